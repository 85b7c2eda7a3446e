package pgtest_test

import (
	"context"
	"database/sql"
	"fmt"
	"testing"

	"github.com/sessionsafe/sessionsafe/pgtest"
)

// A program (the CLI, a tool) starts a server with the first provider that can serve and
// takes a fresh database from a template migrated once.
func ExampleStart() {
	ctx := context.Background()
	srv, err := pgtest.Start(ctx)
	if err != nil {
		fmt.Println(err) // wraps pgtest.ErrNoPostgres, with each provider's reason
		return
	}
	defer srv.Close()

	migrate := func(ctx context.Context, db *sql.DB) error {
		_, err := db.ExecContext(ctx, `CREATE TABLE notes (id serial PRIMARY KEY, body text NOT NULL)`)
		return err
	}
	db, err := srv.NewDatabase(ctx, pgtest.WithMigration("notes-v1", migrate))
	if err != nil {
		fmt.Println(err)
		return
	}
	defer db.Close() // closes the pools and drops the database

	if _, err := db.DB.ExecContext(ctx, `INSERT INTO notes (body) VALUES ('hello')`); err != nil {
		fmt.Println(err)
		return
	}
	var n int
	var app string
	_ = db.DB.QueryRowContext(ctx, `SELECT count(*), current_setting('application_name') FROM notes`).Scan(&n, &app)
	fmt.Println("notes:", n)
	fmt.Println("application_name is the database's own:", app == db.AppName)
	// Output:
	// notes: 1
	// application_name is the database's own: true
}

// In tests, New gives each test its own database on the test binary's server, and Main
// stops that server after the tests.
func ExampleNew() {
	migrate := func(ctx context.Context, db *sql.DB) error {
		_, err := db.ExecContext(ctx, `CREATE TABLE notes (id serial PRIMARY KEY, body text NOT NULL)`)
		return err
	}
	testNotes := func(t *testing.T) {
		db := pgtest.New(t, pgtest.WithMigration("notes-v1", migrate)) // skips without Postgres, fails in CI
		if _, err := db.DB.ExecContext(t.Context(), `INSERT INTO notes (body) VALUES ('hello')`); err != nil {
			t.Fatal(err)
		}
	}
	// func TestMain(m *testing.M) { goleak.VerifyTestMain(pgtest.Main(m)) }
	// func TestNotes(t *testing.T) { testNotes(t) }
	_ = testNotes
}

func ExampleRedactDSN() {
	fmt.Println(pgtest.RedactDSN("postgres://app:s3cret@db.internal:5432/app?sslmode=disable"))
	fmt.Println(pgtest.RedactDSN("host=db.internal user=app password='it\\'s se cret' dbname=app"))
	// Output:
	// postgres://app:xxxxx@db.internal:5432/app?sslmode=disable
	// host=db.internal user=app password=xxxxx dbname=app
}
