package handlers

import (
	"context"
	"testing"

	"github.com/DATA-DOG/go-sqlmock"
)

// BenchmarkOperation times each operation on sqlmock: the handlers' own
// cost (validation, unit of work, scanning) plus database/sql and the mock,
// without a network. Setting up the mock is outside the timed region.
func BenchmarkOperation(b *testing.B) {
	for _, op := range operations() {
		b.Run(op.name, func(b *testing.B) {
			b.ReportAllocs()
			ctx := context.Background()
			for i := 0; i < b.N; i++ {
				b.StopTimer()
				db, mock, err := sqlmock.New(sqlmock.QueryMatcherOption(sqlmock.QueryMatcherEqual))
				if err != nil {
					b.Fatal(err)
				}
				expectAll(mock, op.steps)
				svc := New(db)
				b.StartTimer()
				err = op.run(ctx, svc)
				b.StopTimer()
				if err != nil {
					b.Fatal(err)
				}
				_ = db.Close() // sqlmock reports the unexpected close; nothing to check here
				b.StartTimer()
			}
		})
	}
}
