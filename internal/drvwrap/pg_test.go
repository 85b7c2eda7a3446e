package drvwrap_test

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"

	"github.com/sessionsafe/sessionsafe/internal/drvwrap"
	"github.com/sessionsafe/sessionsafe/pgtest"
)

func migrateT(ctx context.Context, db *sql.DB) error {
	_, err := db.ExecContext(ctx, `
CREATE TABLE t (id int PRIMARY KEY, a varchar(20), d numeric(10,2));
INSERT INTO t VALUES (1, 'one', 1.5), (2, NULL, NULL);`)
	return err
}

// openPG opens a pgx stdlib pool on a fresh database, wrapped or not.
func openPG(tb testing.TB, wrap bool, h drvwrap.Hooks) *sql.DB {
	tb.Helper()
	pdb := pgtest.New(tb, pgtest.WithMigration("drvwrap-t-v1", migrateT))
	cfg, err := pgx.ParseConfig(pdb.DSN)
	if err != nil {
		tb.Fatalf("parse DSN: %v", err)
	}
	var c driver.Connector = stdlib.GetConnector(*cfg)
	if wrap {
		c = drvwrap.WrapConnector(c, h)
	}
	db := sql.OpenDB(c)
	tb.Cleanup(func() { _ = db.Close() })
	return db
}

func TestIdenticalOnPgxStdlib(t *testing.T) {
	for _, tt := range identityHooks {
		t.Run(tt.name, func(t *testing.T) {
			ctx := t.Context()
			want := script(ctx, openPG(t, false, drvwrap.Hooks{}))
			got := script(ctx, openPG(t, true, tt.hooks))
			if d := diffLines(want, got); d != "" {
				t.Errorf("transcript through the wrapper differs (-want +got):\n%s", d)
			}
		})
	}
}

// TestPgxInterfaces checks the wrapped pgx conn has exactly the optional
// interfaces database/sql changes behaviour on, and Unwrap reaches *stdlib.Conn.
func TestPgxInterfaces(t *testing.T) {
	db := openPG(t, true, drvwrap.Hooks{})
	conn, err := db.Conn(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	err = conn.Raw(func(dc any) error {
		_, r := dc.(driver.SessionResetter)
		_, v := dc.(driver.Validator)
		if !r || v {
			t.Errorf("wrapped pgx conn: SessionResetter %v, Validator %v; want true, false as *stdlib.Conn", r, v)
		}
		u, ok := dc.(interface{ Unwrap() driver.Conn })
		if !ok {
			t.Fatal("wrapped conn has no Unwrap")
		}
		if _, ok := u.Unwrap().(*stdlib.Conn); !ok {
			t.Errorf("Unwrap() = %T; want *stdlib.Conn", u.Unwrap())
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
