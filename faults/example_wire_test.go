package faults_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgproto3"
	"github.com/jackc/pgx/v5/stdlib"

	"github.com/sessionsafe/sessionsafe/faults"
)

// discardConn is a net.Conn that swallows what is written to it.
type discardConn struct{ net.Conn }

func (discardConn) Write(p []byte) (int, error) { return len(p), nil }
func (discardConn) Read([]byte) (int, error)    { return 0, io.EOF }
func (discardConn) Close() error                { return nil }

func (discardConn) SetReadDeadline(time.Time) error { return nil }

// A Wire decodes the frontend messages written to the connections it wraps
// and acts at the nth message of a kind: here it cuts the connection right
// after the first COMMIT has been forwarded.
func ExampleWire() {
	w := faults.NewWire()
	if err := w.Arm(faults.WireRule{Message: faults.WireCommit, N: 1, Action: faults.WireCutAfter}); err != nil {
		fmt.Println(err)
		return
	}
	conn := w.WrapConn(discardConn{})
	for _, m := range []pgproto3.FrontendMessage{
		&pgproto3.StartupMessage{ProtocolVersion: pgproto3.ProtocolVersion30, Parameters: map[string]string{"user": "app"}},
		&pgproto3.Query{String: "BEGIN"},
		&pgproto3.Query{String: "INSERT INTO items VALUES (1)"},
		&pgproto3.Query{String: "COMMIT"},
		&pgproto3.Query{String: "SELECT 1"},
	} {
		b, _ := m.Encode(nil)
		if _, err := conn.Write(b); err != nil {
			fmt.Println("write:", errors.Is(err, faults.ErrWireCut))
		}
	}
	for _, f := range w.Fired() {
		fmt.Printf("%v fired on conn %d at %s %q\n", f.Rule, f.Conn, f.Message, f.SQL)
	}
	fmt.Println("queries seen:", w.Hits()[faults.WireQuery])
	// Output:
	// write: true
	// Commit#1:cut-after fired on conn 1 at Query "COMMIT"
	// queries seen: 3
}

// Install puts a Wire under every connection of a pgx configuration, here
// for a database/sql pool through pgx stdlib. The ambiguous commit: the
// server commits, the client's Commit returns an error.
func ExampleWire_Install() {
	cfg, err := pgx.ParseConfig(os.Getenv("SESSIONSAFE_PG_DSN"))
	if err != nil {
		fmt.Println(err)
		return
	}
	w := faults.NewWire()
	w.Install(&cfg.Config)
	db := stdlib.OpenDB(*cfg)
	defer db.Close()
	db.SetMaxOpenConns(1) // every counted message is on the one session under test

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := w.Arm(faults.WireRule{Message: faults.WireCommit, N: 1, Action: faults.WireCutAfter}); err != nil {
		fmt.Println(err)
		return
	}
	err = inTx(ctx, db, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO items VALUES ($1)`, 1)
		return err
	})
	fmt.Println("commit failed:", err != nil, "- yet the row is committed")
}

// inTx runs fn in a transaction and commits it.
func inTx(ctx context.Context, db *sql.DB, fn func(*sql.Tx) error) error {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	if err := fn(tx); err != nil {
		return errors.Join(err, tx.Rollback())
	}
	return tx.Commit()
}

// A stall holds the nth message back until Disarm (or the query's context
// ends); a delay forwards it late.
func ExampleWireRule() {
	for _, r := range []faults.WireRule{
		{Message: faults.WireQuery, N: 3, Action: faults.WireStall},
		{Message: faults.WireSync, N: 1, Action: faults.WireDelay, Delay: 50 * time.Millisecond},
		{Message: faults.WireExecute, N: 2, Action: faults.WireCutBefore, Conn: 1},
	} {
		fmt.Println(r)
	}
	// Output:
	// Query#3:stall
	// Sync#1:delay=50ms
	// Execute#2:cut-before@conn1
}
