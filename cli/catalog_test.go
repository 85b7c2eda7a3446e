package cli

import (
	"bytes"
	"context"
	"database/sql"
	"strings"
	"testing"

	"github.com/sessionsafe/sessionsafe/scenarios"
)

// bareCatalog has one database/sql operation and nothing else: no golden traces (Postgres
// only), no HTTP API, no chaos workload.
func bareCatalog() Catalog {
	return Catalog{
		Name: "bare",
		Operations: []scenarios.Operation{{
			Name:  "Ping",
			Setup: func(context.Context, *sql.DB) (scenarios.Fixture, error) { return nil, nil },
			Run:   func(ctx context.Context, db *sql.DB, _ scenarios.Fixture) error { return db.PingContext(ctx) },
		}},
		Migration: "bare-v1",
		Migrate:   func(context.Context, *sql.DB) error { return nil },
	}
}

func TestCatalogSelection(t *testing.T) {
	two := []Catalog{threadCatalog(), bareCatalog()}
	dup := bareCatalog()
	dup.Name = "a b"
	dup.Operations = append(dup.Operations, dup.Operations[0])
	dup.Migrate = nil
	tests := []struct {
		name       string
		catalogs   []Catalog
		args       []string
		wantExit   int
		wantOutput string // in stdout or stderr
	}{
		{"usage-lists-catalogs", two, []string{"-h"}, exitOK, "bare    1 database/sql and 0 pgx operations"},
		{"unknown-catalog", two, []string{"matrix", "-catalog", "nope"}, exitUsage, `-catalog "nope": no such catalog; want one of threads, bare`},
		{"sqlmock-without-golden", two, []string{"matrix", "-catalog", "bare", "-backend", "sqlmock"}, exitUsage, "catalog bare has no golden traces (Catalog.Golden): it runs on postgres only"},
		{"serve-without-handler", two, []string{"serve", "-catalog", "bare"}, exitUsage, "catalog bare has no HTTP API to serve (Catalog.Handler)"},
		{"chaos-without-workload", two, []string{"chaos", "-catalog", "bare", "-backend", "postgres"}, exitUsage, "catalog bare has no chaos workload on postgres"},
		{"chaos-on-no-backend", two, []string{"chaos", "-catalog", "bare"}, exitUsage, "catalog bare can run chaos on no backend"},
		{"replay-seed-without-workload", two, []string{"replay", "-catalog", "bare", "-seed", "1", "-backend", "both"}, exitUsage, "catalog bare can run replay on no backend"},
		{"bad-flag-names-program", two, []string{"matrix", "-bogus"}, exitUsage, "check matrix: flag provided but not defined: -bogus (see check matrix -h)"},
		{"no-catalog", nil, []string{"matrix"}, exitUsage, "no catalog: Main needs at least one"},
		{"bad-catalog", []Catalog{dup}, []string{"matrix"}, exitUsage, `catalog "a b": name "a b": want letters, digits, '-' or '_'; operation "Ping" twice; no Migrate`},
		{"same-name-twice", []Catalog{bareCatalog(), bareCatalog()}, []string{"matrix"}, exitUsage, `catalog "bare" given twice`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out, errOut bytes.Buffer
			code := program{name: "check", catalogs: tt.catalogs}.run(t.Context(), tt.args, &out, &errOut, noEnv)
			if code != tt.wantExit || !strings.Contains(out.String()+errOut.String(), tt.wantOutput) {
				t.Errorf("check %s: exit %d; want %d and output containing %q\nstdout: %s\nstderr: %s",
					strings.Join(tt.args, " "), code, tt.wantExit, tt.wantOutput, out.String(), errOut.String())
			}
		})
	}
}

// TestCaseReplayNamesProgramAndCatalog: a replay command calls the program by its name, and
// names the catalog when there are several to choose from.
func TestCaseReplayNamesProgramAndCatalog(t *testing.T) {
	c := scenarios.Case{Operation: "Ping", Backend: scenarios.Sqlmock}
	for _, tt := range []struct {
		name string
		o    options
		want string
	}{
		{"one-catalog", options{prog: "check"}, "check replay -backend sqlmock -case 'Ping/step-0-clean/clean'"},
		{"several", options{prog: "check", catalogArg: " -catalog bare"}, "check replay -catalog bare -backend sqlmock -case 'Ping/step-0-clean/clean'"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if got := caseReplay(c, &tt.o); got != tt.want {
				t.Errorf("got %q; want %q", got, tt.want)
			}
		})
	}
}
