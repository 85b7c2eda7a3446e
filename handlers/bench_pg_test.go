package handlers

import (
	"context"
	"fmt"
	"testing"
)

// BenchmarkPostgres times each operation on a real server next to a bare
// SELECT 1 round trip through the same pool in the same run: the ratio
// shows how many round trips (and how much work) each operation costs.
// Reads run first, the operations that add rows last.
func BenchmarkPostgres(b *testing.B) {
	f := newPG(b)
	ctx := context.Background()
	th := f.seedThread(b, pgUser, 5)
	title := "bench"
	sent := 0 // client ids stay unique across the benchmark's rounds
	b.Run("SELECT1", func(b *testing.B) {
		b.ReportAllocs()
		for i := 0; i < b.N; i++ {
			var n int
			if err := f.db.QueryRowContext(ctx, "SELECT 1").Scan(&n); err != nil {
				b.Fatal(err)
			}
		}
	})
	benches := []struct {
		name string
		run  func(i int) error
	}{
		{"ListThreads", func(int) error { _, err := f.svc.ListThreads(ctx, pgUser, Page{Limit: 20}); return err }},
		{"GetThread", func(int) error { _, err := f.svc.GetThread(ctx, pgUser, th.ID); return err }},
		{"GetMessages", func(int) error { _, err := f.svc.GetMessages(ctx, pgUser, th.ID, Page{Limit: 20}); return err }},
		{"UpdateThread", func(i int) error {
			_, err := f.svc.UpdateThread(ctx, pgUser, th.ID, UpdateThreadInput{Title: &title, Metadata: map[string]any{"i": i}})
			return err
		}},
		{"AutoRename", func(int) error { _, err := f.svc.AutoRename(ctx, pgUser, th.ID); return err }},
		{"SendMessage", func(int) error {
			sent++
			_, err := f.svc.SendMessage(ctx, pgUser, th.ID, SendMessageInput{Content: "bench", ClientMessageID: fmt.Sprintf("b%d", sent)})
			return err
		}},
		{"CreateThread", func(int) error {
			_, err := f.svc.CreateThread(ctx, pgUser, CreateThreadInput{Title: "t", Metadata: map[string]any{"k": 1}})
			return err
		}},
	}
	for _, bb := range benches {
		b.Run(bb.name, func(b *testing.B) {
			b.ReportAllocs()
			for i := 0; i < b.N; i++ {
				if err := bb.run(i); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
	b.Run("DeleteThread", func(b *testing.B) {
		b.ReportAllocs()
		for i := 0; i < b.N; i++ {
			b.StopTimer()
			victim, err := f.svc.CreateThread(ctx, pgUser, CreateThreadInput{Title: "victim"})
			if err != nil {
				b.Fatal(err)
			}
			b.StartTimer()
			if err := f.svc.DeleteThread(ctx, pgUser, victim.ID); err != nil {
				b.Fatal(err)
			}
		}
	})
}
