package scenarios_test

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"os"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/sessionsafe/sessionsafe/scenarios"
)

// TestConfigErrors: a configuration the runner cannot run is ErrConfig,
// before anything runs.
func TestConfigErrors(t *testing.T) {
	setup := func(context.Context, *sql.DB) (scenarios.Fixture, error) { return nil, nil }
	run := func(context.Context, *sql.DB, scenarios.Fixture) error { return nil }
	runPgx := func(context.Context, *pgxpool.Pool, scenarios.Fixture) error { return nil }
	db := &sql.DB{}
	tests := []struct {
		name string
		cfg  scenarios.Config
		op   scenarios.Operation
	}{
		{"both Run and RunPgx", scenarios.Config{Backend: scenarios.Postgres, DSN: "postgres://x", DB: db},
			scenarios.Operation{Name: "Op", Setup: setup, Run: run, RunPgx: runPgx}},
		{"neither Run nor RunPgx", scenarios.Config{Backend: scenarios.Postgres, DSN: "postgres://x", DB: db},
			scenarios.Operation{Name: "Op", Setup: setup}},
		{"RunPgx on sqlmock", scenarios.Config{Backend: scenarios.Sqlmock, Golden: os.DirFS(".")},
			scenarios.Operation{Name: "Op", Setup: setup, RunPgx: runPgx}},
		{"RunPgx with a Connector and no DSN", scenarios.Config{Backend: scenarios.Postgres, Connector: nopConnector{}, DB: db},
			scenarios.Operation{Name: "Op", Setup: setup, RunPgx: runPgx}},
		{"Parallel below 0", scenarios.Config{Backend: scenarios.Sqlmock, Golden: os.DirFS("."), Parallel: -1},
			scenarios.Operation{Name: "Op", Setup: setup, Run: run}},
		// each parallel lane names its sessions on a config of the DSN's
		{"Parallel with a Connector", scenarios.Config{Backend: scenarios.Postgres, Connector: nopConnector{}, DB: db, Parallel: 2},
			scenarios.Operation{Name: "Op", Setup: setup, Run: run}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := scenarios.NewRunner(t.Context(), tt.cfg, tt.op)
			if !errors.Is(err, scenarios.ErrConfig) {
				t.Errorf("got %v; want scenarios.ErrConfig", err)
			}
		})
	}
}

// nopConnector is a driver.Connector that is never used: the runner
// refuses the configuration first.
type nopConnector struct{}

func (nopConnector) Connect(context.Context) (driver.Conn, error) {
	return nil, errors.New("nop connector: not for use")
}
func (nopConnector) Driver() driver.Driver { return nil }
