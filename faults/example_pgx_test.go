package faults_test

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/sessionsafe/sessionsafe/faults"
)

// A PgxInjector, installed on a pgx config, records one step per protocol
// request of each connection: a transaction in the simple protocol, and a
// statement run in one extended-protocol round trip, as pgx sends them.
// On a real pool: inj.Install(&poolConfig.ConnConfig.Config).
func ExamplePgxInjector() {
	inj := faults.NewPgxInjector()
	var cfg pgconn.Config
	inj.Install(&cfg)
	conn, _ := cfg.AfterNetConnect(context.Background(), &cfg, discardConn{})
	for _, msgs := range [][]pgproto3.FrontendMessage{
		{&pgproto3.StartupMessage{ProtocolVersion: pgproto3.ProtocolVersion30, Parameters: map[string]string{"user": "app"}}},
		{&pgproto3.Query{String: "begin"}},
		{&pgproto3.Parse{Query: "UPDATE accounts SET balance = balance - $1 WHERE id = $2"},
			&pgproto3.Bind{Parameters: [][]byte{[]byte("100"), []byte("7")}}, &pgproto3.Describe{ObjectType: 'P'},
			&pgproto3.Execute{}, &pgproto3.Sync{}},
		{&pgproto3.Query{String: "commit"}},
	} {
		var b []byte
		for _, m := range msgs {
			b, _ = m.Encode(b)
		}
		_, _ = conn.Write(b)
	}
	fmt.Print(inj.Trace())
	// Output:
	//   1 connect    conn=1
	//   2 begin      conn=1
	//   3 exec       conn=1 UPDATE accounts SET balance = balance - $1 WHERE id = $2 args=2
	//   4 commit     conn=1
}
