package cli

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"regexp"
	"strings"

	"github.com/sessionsafe/sessionsafe/chaos"
	"github.com/sessionsafe/sessionsafe/scenarios"
)

// Catalog is one body of code the command line puts through the harness: its operations,
// and what the runner needs to give them a database. [Main] takes one or more; the flag
// -catalog NAME picks one (the first given by default).
type Catalog struct {
	// Name selects the catalog (-catalog NAME) and appears in its reports: letters,
	// digits, '-' and '_'.
	Name string
	// Operations are the matrix's operations, database/sql (Run) and pgx (RunPgx) alike.
	// Names are unique in a catalog. A pgx operation runs on Postgres only: on sqlmock the
	// matrix leaves it out.
	Operations []scenarios.Operation
	// Golden holds the golden traces of the database/sql operations, one
	// "<operation>.trace" each (scenarios.RecordGolden), for the sqlmock backend. Nil: the
	// catalog runs on Postgres only, and -backend sqlmock is an error.
	Golden fs.FS
	// Migration names the schema Migrate creates: each run's database is cloned from a
	// template migrated once per name. Change it when Migrate changes.
	Migration string
	// Migrate creates the schema on a fresh database.
	Migrate func(ctx context.Context, db *sql.DB) error
	// Handler, if set, is the catalog's HTTP API, built on the instrumented pool db, for
	// `serve`. Nil: the catalog has no serve.
	Handler func(db *sql.DB) http.Handler
	// Chaos, if set, is the catalog's chaos workload on Postgres (chaos and replay -seed):
	// workers, ledger, invariants, server chaos, shrinking and replay. Nil: chaos runs the
	// database/sql operations on sqlmock only.
	Chaos *chaos.Workload
}

var catalogNameRE = regexp.MustCompile(`^[A-Za-z0-9_-]+$`)

// check reports what is wrong with c, all of it.
func (c Catalog) check() error {
	var probs []string
	if !catalogNameRE.MatchString(c.Name) {
		probs = append(probs, fmt.Sprintf("name %q: want letters, digits, '-' or '_'", c.Name))
	}
	if len(c.Operations) == 0 {
		probs = append(probs, "no operations")
	}
	seen := map[string]bool{}
	for _, op := range c.Operations {
		if seen[op.Name] {
			probs = append(probs, fmt.Sprintf("operation %q twice", op.Name))
		}
		seen[op.Name] = true
	}
	if c.Migrate == nil {
		probs = append(probs, "no Migrate (the schema for Postgres)")
	}
	if c.Migration == "" {
		probs = append(probs, "no Migration (the name of the schema Migrate creates)")
	}
	if len(probs) > 0 {
		return fmt.Errorf("catalog %q: %s", c.Name, strings.Join(probs, "; "))
	}
	return nil
}

// errNoCatalog is Main's error when given no catalog.
var errNoCatalog = errors.New("no catalog: Main needs at least one")

// checkCatalogs checks every catalog and that their names differ.
func checkCatalogs(cats []Catalog) error {
	if len(cats) == 0 {
		return errNoCatalog
	}
	seen := map[string]bool{}
	var errs []error
	for _, c := range cats {
		if err := c.check(); err != nil {
			errs = append(errs, err)
		}
		if seen[c.Name] {
			errs = append(errs, fmt.Errorf("catalog %q given twice", c.Name))
		}
		seen[c.Name] = true
	}
	return errors.Join(errs...)
}

// findCatalog returns the catalog named name ("" the first).
func findCatalog(cats []Catalog, name string) (*Catalog, error) {
	if name == "" {
		return &cats[0], nil
	}
	var names []string
	for i := range cats {
		if cats[i].Name == name {
			return &cats[i], nil
		}
		names = append(names, cats[i].Name)
	}
	return nil, usagef("-catalog %q: no such catalog; want one of %s", name, strings.Join(names, ", "))
}

// sqlmockOperations are the operations of c the sqlmock backend runs: the database/sql ones.
func (c *Catalog) sqlmockOperations() []scenarios.Operation {
	var ops []scenarios.Operation
	for _, op := range c.Operations {
		if op.Run != nil {
			ops = append(ops, op)
		}
	}
	return ops
}
