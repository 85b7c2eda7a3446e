package faults_test

import (
	"context"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/sessionsafe/sessionsafe/faults"
)

// sinkConn is a net.Conn that takes every write and never answers.
type sinkConn struct {
	net.Conn
	written []byte
}

func (c *sinkConn) Write(p []byte) (int, error) {
	c.written = append(c.written, p...)
	return len(p), nil
}
func (c *sinkConn) Close() error                     { return nil }
func (c *sinkConn) SetDeadline(time.Time) error      { return nil }
func (c *sinkConn) SetWriteDeadline(time.Time) error { return nil }

// TestPgxInjectorSteps feeds frontend messages as pgx writes them to an
// injected connection and checks the steps recorded.
func TestPgxInjectorSteps(t *testing.T) {
	enc := func(msgs ...pgproto3.FrontendMessage) []byte {
		var b []byte
		for _, m := range msgs {
			var err error
			if b, err = m.Encode(b); err != nil {
				t.Fatal(err)
			}
		}
		return b
	}
	startup := &pgproto3.StartupMessage{ProtocolVersion: pgproto3.ProtocolVersionNumber, Parameters: map[string]string{"user": "u"}}
	tests := []struct {
		name   string
		writes [][]byte
		want   string // "kind SQL" per step, one a line
	}{
		{"simple transaction", [][]byte{
			enc(startup), enc(&pgproto3.Query{String: "begin"}), enc(&pgproto3.Query{String: "commit"}),
			enc(&pgproto3.Query{String: "rollback"}), enc(&pgproto3.Query{String: "-- ping"}), enc(&pgproto3.Terminate{}),
		}, "connect \nbegin begin\ncommit commit\nrollback rollback\nping -- ping\nclose "},
		{"prepare then execute", [][]byte{
			enc(startup),
			enc(&pgproto3.Parse{Name: "s1", Query: "UPDATE t SET n = $1"}, &pgproto3.Describe{ObjectType: 'S', Name: "s1"}, &pgproto3.Sync{}),
			enc(&pgproto3.Bind{PreparedStatement: "s1", Parameters: [][]byte{[]byte("1")}}, &pgproto3.Describe{ObjectType: 'P'},
				&pgproto3.Execute{}, &pgproto3.Sync{}),
		}, "connect \nprepare UPDATE t SET n = $1\nexec UPDATE t SET n = $1"},
		{"one round trip, split across writes", [][]byte{
			enc(startup),
			enc(&pgproto3.Parse{Query: "SELECT n FROM t"})[:7],
			append(enc(&pgproto3.Parse{Query: "SELECT n FROM t"})[7:], enc(&pgproto3.Bind{}, &pgproto3.Describe{ObjectType: 'P'},
				&pgproto3.Execute{}, &pgproto3.Sync{})...),
		}, "connect \nquery SELECT n FROM t"},
		{"batch", [][]byte{
			enc(startup),
			enc(&pgproto3.Parse{Query: "INSERT INTO t VALUES (1)"}, &pgproto3.Bind{}, &pgproto3.Execute{},
				&pgproto3.Parse{Query: "SELECT 1"}, &pgproto3.Bind{}, &pgproto3.Execute{}, &pgproto3.Sync{}),
		}, "connect \nquery INSERT INTO t VALUES (1); SELECT 1"},
		{"copy", [][]byte{
			enc(startup), enc(&pgproto3.Query{String: "COPY t FROM STDIN"}),
			enc(&pgproto3.CopyData{Data: []byte("1\n")}), enc(&pgproto3.CopyDone{}),
		}, "connect \nexec COPY t FROM STDIN"},
		{"insert returning", [][]byte{
			enc(startup), enc(&pgproto3.Query{String: "insert into t values (1) returning n"}),
		}, "connect \nquery insert into t values (1) returning n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			inj := faults.NewPgxInjector()
			var cfg pgconn.Config
			inj.Install(&cfg)
			sink := &sinkConn{}
			conn, err := cfg.AfterNetConnect(context.Background(), &cfg, sink)
			if err != nil {
				t.Fatal(err)
			}
			var all []byte
			for _, w := range tt.writes {
				all = append(all, w...)
				if _, err := conn.Write(w); err != nil {
					t.Fatal(err)
				}
			}
			var got []string
			for _, s := range inj.Trace() {
				got = append(got, s.Kind.String()+" "+s.SQL)
			}
			if g := strings.Join(got, "\n"); g != tt.want {
				t.Errorf("got steps:\n%s\nwant:\n%s", g, tt.want)
			}
			if string(sink.written) != string(all) {
				t.Errorf("got %d bytes forwarded; want the %d written, unchanged", len(sink.written), len(all))
			}
		})
	}
}
