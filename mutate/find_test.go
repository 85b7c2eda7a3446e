package mutate

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
)

// sitesMutants loads testdata/src/sites once: loading with types takes seconds.
var sitesMutants = sync.OnceValues(func() ([]Mutant, error) {
	return Find(context.Background(), []string{"./testdata/src/sites"})
})

func TestFindOperators(t *testing.T) {
	tests := []struct {
		op    string
		sites []string // file:line of every site, in order (files relative to testdata/src/sites)
		at    string   // the site whose diff is checked
		diff  []string // lines its diff must hold
	}{
		{"drop-deferred-rollback", []string{"pgx.go:21", "sql.go:30", "sql.go:115"}, "sql.go:115",
			[]string{"-	defer func() { _ = tx.Rollback() }()", "+	defer func() { _ = tx }()"}},
		{"drop-rollback-on-error", []string{"pgx.go:26", "sql.go:55"}, "sql.go:55",
			[]string{"-		tx.Rollback()", "+		_ = tx"}},
		{"return-nil-after-rollback", []string{"pgx.go:27", "sql.go:56"}, "pgx.go:27",
			[]string{"-		return err", "+		return nil"}},
		{"ignore-commit-error", []string{"pgx.go:29", "sql.go:41", "sql.go:58", "sql.go:119"}, "sql.go:41",
			[]string{"-	if err := tx.Commit(); err != nil {", "-		return fmt.Errorf(\"commit: %w\", err)", "+	_ = tx.Commit()"}},
		{"call-before-commit", []string{"sql.go:44", "sql.go:123"}, "sql.go:44",
			[]string{"+	s.notify(from)\n 	if err := tx.Commit(); err != nil {", "-	s.notify(from)\n 	return nil"}},
		{"drop-rows-close", []string{"pgx.go:43", "sql.go:67"}, "pgx.go:43",
			[]string{"-	defer rows.Close()", "+	_ = rows"}},
		{"drop-rows-err-check", []string{"pgx.go:52", "sql.go:77"}, "pgx.go:52",
			[]string{"-	if rows.Err() != nil {", "-		return nil, rows.Err()", "+	_ = rows.Err()"}},
		{"drop-conn-release", []string{"pgx.go:38", "pgx.go:64", "sql.go:89"}, "pgx.go:38",
			[]string{"-	defer conn.Release()", "+	_ = conn"}},
		{"drop-stmt-close", []string{"sql.go:94"}, "sql.go:94",
			[]string{"-	defer stmt.Close()", "+	_ = stmt"}},
		{"context-background", []string{
			"pgx.go:17", "pgx.go:22", "pgx.go:25", "pgx.go:34", "pgx.go:39", "pgx.go:65",
			"sql.go:26", "sql.go:31", "sql.go:35", "sql.go:38", "sql.go:50", "sql.go:54", "sql.go:63",
			"sql.go:85", "sql.go:90", "sql.go:95", "sql.go:105", "sql.go:111",
		}, "sql.go:26",
			[]string{"-	tx, err := s.db.BeginTx(ctx, nil)", "+	tx, err := s.db.BeginTx(context.Background(), nil)"}},
		{"tx-call-on-pool", []string{"pgx.go:22", "pgx.go:25", "sql.go:31", "sql.go:35", "sql.go:38", "sql.go:54"}, "pgx.go:25",
			[]string{"-	if _, err := tx.Exec(ctx, sqlMove, amount, to); err != nil {", "+	if _, err := s.pool.Exec(ctx, sqlMove, amount, to); err != nil {"}},
		{"tx-arg-to-pool", []string{"sql.go:116"}, "sql.go:116",
			[]string{"+	if err := credit(ctx, s.db, id, amount); err != nil {"}},
		{"drop-for-update", []string{"pgx.go:22", "sql.go:12"}, "sql.go:12",
			[]string{"+const sqlBalance = `SELECT balance FROM accounts WHERE id = $1`"}},
		{"set-local-to-set", []string{"pgx.go:65", "sql.go:31"}, "sql.go:31",
			[]string{`+	if _, err := tx.ExecContext(ctx, "SET lock_timeout = '1s'"); err != nil {`}},
		{"drop-defer-cancel", []string{"sql.go:25"}, "sql.go:25",
			[]string{"-	defer cancel()", "+	_ = cancel"}},
	}
	all, err := sitesMutants()
	if err != nil {
		t.Fatal(err)
	}
	tested := map[string]bool{}
	for _, tt := range tests {
		tested[tt.op] = true
		t.Run(tt.op, func(t *testing.T) {
			var got []string
			var at *Mutant
			for i, m := range all {
				if m.Operator != tt.op {
					continue
				}
				pos := strings.TrimPrefix(m.Pos(), "mutate/testdata/src/sites/")
				got = append(got, pos)
				if pos == tt.at && at == nil {
					at = &all[i]
				}
			}
			if !slices.Equal(got, tt.sites) {
				t.Fatalf("sites mismatch:\n got %v\nwant %v", got, tt.sites)
			}
			if at == nil {
				t.Fatalf("no mutant at %s", tt.at)
			}
			for _, want := range tt.diff {
				if !strings.Contains(at.Diff, want+"\n") {
					t.Errorf("diff of %s lacks %q; got:\n%s", at.ID, want, at.Diff)
				}
			}
		})
	}
	for _, op := range Operators() {
		if !tested[op.ID] {
			t.Errorf("operator %s has no case in this table", op.ID)
		}
	}
}

func TestFindLookalikes(t *testing.T) {
	all, err := sitesMutants()
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range all {
		if strings.HasSuffix(m.File, "/lookalike.go") {
			t.Errorf("%s: a method that is only named like a database one became a site:\n%s", m.ID, m.Diff)
		}
	}
}

func TestFindIDsUnique(t *testing.T) {
	all, err := sitesMutants()
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, m := range all {
		if seen[m.ID] {
			t.Errorf("duplicate mutant id %s", m.ID)
		}
		seen[m.ID] = true
		if want := m.Operator + "@" + m.Pos(); !strings.HasPrefix(m.ID, want) {
			t.Errorf("id %s: want it to start with %s", m.ID, want)
		}
	}
}

func TestFindErrors(t *testing.T) {
	tests := []struct {
		name string
		opts []Option
		want string
	}{
		{"unknown-operator", []Option{WithOperators("drop-everything")}, `unknown operator "drop-everything"`},
		{"run-option", []Option{WithParallel(2)}, "option WithParallel does not apply here"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Find(context.Background(), []string{"./testdata/src/sites"}, tt.opts...)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Find: got error %v; want one containing %q", err, tt.want)
			}
		})
	}
}

func TestShardOf(t *testing.T) {
	all, err := sitesMutants()
	if err != nil {
		t.Fatal(err)
	}
	const n = 4
	count := map[int]int{}
	for _, m := range all {
		s := ShardOf(m.ID, n)
		if s < 1 || s > n {
			t.Fatalf("ShardOf(%q, %d) = %d; want 1..%d", m.ID, n, s, n)
		}
		if again := ShardOf(m.ID, n); again != s {
			t.Fatalf("ShardOf(%q) = %d, then %d; want the same", m.ID, s, again)
		}
		count[s]++
	}
	if len(count) < 2 {
		t.Errorf("all %d mutants fell in one shard: %v", len(all), count)
	}
}

// listSource is a store function with a context-background site on line 9 and a
// drop-rows-close site on line 11; QUERY, ABOVE and TRAILING are replaced by each case's
// directive (at the end of line 9, on line 10 of its own, at the end of line 11).
const listSource = `package equiv

import (
	"context"
	"database/sql"
)

func List(ctx context.Context, db *sql.DB) error {
	rows, err := db.QueryContext(ctx, "SELECT 1") QUERY
	ABOVE
	defer rows.Close() TRAILING
	if err != nil {
		return err
	}
	for rows.Next() {
	}
	return rows.Err()
}
`

func TestEquivalentDirective(t *testing.T) {
	tests := []struct {
		name                string
		query, above, trail string
		operators           []string
		wantEquiv           string // the reason the drop-rows-close mutant carries
		wantErr             string
	}{
		{name: "trailing", trail: "//sessionsafe:equivalent drop-rows-close the rows close when Next returns false", wantEquiv: "the rows close when Next returns false"},
		{name: "own-line-above", above: "//sessionsafe:equivalent drop-rows-close closed by Next", wantEquiv: "closed by Next"},
		// a directive excuses its own operator only: the line's context-background site is not it
		{name: "other-operators-site", query: "//sessionsafe:equivalent drop-rows-close wrong line", wantErr: "equiv.go:9: //sessionsafe:equivalent drop-rows-close: operator drop-rows-close finds no site on line 9"},
		{name: "not-a-directive", trail: "//sessionsafe:equivalently drop-rows-close no"},
		{name: "unknown-operator", trail: "//sessionsafe:equivalent drop-everything because", wantErr: `equiv.go:11: //sessionsafe:equivalent names unknown operator "drop-everything"`},
		{name: "no-reason", trail: "//sessionsafe:equivalent drop-rows-close", wantErr: "equiv.go:11: //sessionsafe:equivalent drop-rows-close gives no reason"},
		{name: "no-operator", above: "//sessionsafe:equivalent", wantErr: "equiv.go:10: //sessionsafe:equivalent names no operator"},
		{name: "stale", above: "//sessionsafe:equivalent drop-rows-err-check no such check here", wantErr: "equiv.go:10: //sessionsafe:equivalent drop-rows-err-check: operator drop-rows-err-check finds no site on line 11"},
		{name: "stale-for-unselected-operator", above: "//sessionsafe:equivalent drop-rows-err-check no such check here", operators: []string{"drop-rows-close"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			src := strings.NewReplacer("QUERY", tt.query, "ABOVE", tt.above, "TRAILING", tt.trail).Replace(listSource)
			for name, text := range map[string]string{"go.mod": "module example.com/equiv\n\ngo 1.24\n", "equiv.go": src} {
				if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			opts := []Option{WithDir(dir)}
			if tt.operators != nil {
				opts = append(opts, WithOperators(tt.operators...))
			}
			ms, err := Find(context.Background(), []string{"."}, opts...)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("Find: got error %v; want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			found := false
			for _, m := range ms {
				want := ""
				if m.Operator == "drop-rows-close" {
					found, want = true, tt.wantEquiv
				}
				if m.Equivalent != want {
					t.Errorf("%s: Equivalent %q; want %q", m.ID, m.Equivalent, want)
				}
			}
			if !found {
				t.Fatalf("Find: no drop-rows-close mutant among %d", len(ms))
			}
		})
	}
}
