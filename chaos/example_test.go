package chaos_test

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"time"

	"github.com/sessionsafe/sessionsafe/chaos"
)

// A workload of one's own: operations that write keys (each declared to the ledger with
// Write), a Lookup that reads a key back, and an invariant. Run it on a real PostgreSQL
// database (here from SESSIONSAFE_PG_DSN, with an admin pool for the server checks);
// every violation prints the worker's stream seed, which replays it alone.
func ExampleRun() {
	wl := &chaos.Workload{
		Name: "kv",
		Operations: []chaos.Operation{{Name: "put", Run: func(ctx context.Context, db *sql.DB, o *chaos.Op) error {
			key := fmt.Sprintf("k%d", o.Index)
			o.Write(key)
			_, err := db.ExecContext(ctx, `INSERT INTO kv (scope, k) VALUES ($1, $2)`, o.Worker.Scope, key)
			return err
		}}},
		Lookup: func(ctx context.Context, db *sql.DB, w *chaos.Worker, key string) (n int, err error) {
			err = db.QueryRowContext(ctx, `SELECT count(*) FROM kv WHERE scope = $1 AND k = $2`, w.Scope, key).Scan(&n)
			return n, err
		},
	}
	dsn := os.Getenv("SESSIONSAFE_PG_DSN")
	if dsn == "" {
		return
	}
	admin, err := sql.Open("pgx", dsn)
	if err != nil {
		panic(err)
	}
	defer admin.Close()
	cfg := chaos.Config{Seed: 1, Workers: 4, Duration: 10 * time.Second, FaultRate: 0.03, Panics: true}
	res, err := chaos.Run(context.Background(), wl, cfg, chaos.Target{DSN: dsn, Admin: admin, AppName: "kv-chaos"})
	if err != nil {
		panic(err)
	}
	for _, v := range res.Violations {
		fmt.Println(v, "- replay: seed", v.StreamSeed, "workers 1, ops", v.OpIndex+1)
	}
	fmt.Printf("%d operations, %d faults, %d acknowledged writes checked\n", res.Operations, res.Faults, res.Acked)
}
