package pgtest_test

import (
	"fmt"
	"runtime"
	"strings"
	"sync"
	"testing"

	"github.com/sessionsafe/sessionsafe/pgtest"
)

// recordingTB is a testing.TB whose Skipf and Fatalf are recorded instead of ending the
// real test; both end the goroutine like the real ones.
type recordingTB struct {
	testing.TB
	mu               sync.Mutex
	skipped, fataled string
}

func (r *recordingTB) Helper() {}

func (r *recordingTB) Skipf(format string, args ...any) {
	r.mu.Lock()
	r.skipped = fmt.Sprintf(format, args...)
	r.mu.Unlock()
	runtime.Goexit()
}

func (r *recordingTB) Fatalf(format string, args ...any) {
	r.mu.Lock()
	r.fataled = fmt.Sprintf(format, args...)
	r.mu.Unlock()
	runtime.Goexit()
}

// TestNewSkipsOrFails: without Postgres, New skips with the reason, unless the environment
// demands Postgres, where it fails.
func TestNewSkipsOrFails(t *testing.T) {
	unreachable := "postgres://nobody@127.0.0.1:1/postgres?sslmode=disable&connect_timeout=2"
	tests := []struct {
		name       string
		opts       []pgtest.Option
		ci         string
		required   string
		wantSkip   bool
		wantReason string
	}{
		{"unreachable-dsn/not-required", []pgtest.Option{pgtest.WithProvider("dsn"), pgtest.WithDSN(unreachable)}, "", "", true, "127.0.0.1"},
		{"unreachable-dsn/required", []pgtest.Option{pgtest.WithProvider("dsn"), pgtest.WithDSN(unreachable)}, "", "1", false, "127.0.0.1"},
		{"unreachable-dsn/ci", []pgtest.Option{pgtest.WithProvider("dsn"), pgtest.WithDSN(unreachable)}, "true", "", false, "required"},
		{"unknown-provider/not-required", []pgtest.Option{pgtest.WithProvider("bogus")}, "", "", true, `unknown provider "bogus"`},
		{"unknown-provider/required", []pgtest.Option{pgtest.WithProvider("bogus")}, "", "1", false, `unknown provider "bogus"`},
		{"none/not-required", []pgtest.Option{pgtest.WithProvider("none")}, "", "", true, "disabled"},
		{"none/required", []pgtest.Option{pgtest.WithProvider("none")}, "", "1", false, "disabled"},
		{"dsn-unset/not-required", []pgtest.Option{pgtest.WithProvider("dsn"), pgtest.WithDSN("")}, "", "", true, pgtest.EnvDSN + " is not set"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv("CI", tt.ci)
			t.Setenv(pgtest.EnvRequired, tt.required)
			rec := &recordingTB{TB: t}
			done := make(chan struct{})
			go func() {
				defer close(done)
				pgtest.New(rec, tt.opts...)
			}()
			<-done
			got := rec.fataled
			if tt.wantSkip {
				got = rec.skipped
				if rec.fataled != "" {
					t.Errorf("New failed the test: %s; want a skip", rec.fataled)
				}
			} else if rec.skipped != "" {
				t.Errorf("New skipped the test: %s; want a failure", rec.skipped)
			}
			if got == "" {
				t.Fatalf("New neither skipped nor failed (skip %q, fatal %q)", rec.skipped, rec.fataled)
			}
			if !strings.Contains(got, tt.wantReason) {
				t.Errorf("reason: got %q; want it to contain %q", got, tt.wantReason)
			}
			if strings.Contains(got, "nobody:") {
				t.Errorf("reason leaks credentials: %q", got)
			}
		})
	}
}

func TestRedactDSN(t *testing.T) {
	tests := []struct{ name, in, want string }{
		{"url-password", "postgres://app:s3cret@db:5432/app?sslmode=disable", "postgres://app:xxxxx@db:5432/app?sslmode=disable"},
		{"url-no-password", "postgres://app@db/app", "postgres://app@db/app"},
		{"url-percent-encoded", "postgres://u:se%20cret@h/db", "postgres://u:xxxxx@h/db"},
		{"url-raw-space", "postgres://u:se cret@h/db", "postgres://u:xxxxx@h/db"},
		{"url-raw-at", "postgres://u:p@ss@h/db", "postgres://u:xxxxx@h/db"},
		{"query-password", "postgres://db/app?password=s3cret", "postgres://db/app?password=xxxxx"},
		{"key-value", "host=db user=app password=s3cret dbname=app", "host=db user=app password=xxxxx dbname=app"},
		{"key-value-quoted-space", "host=db password='se cret' dbname=app", "host=db password=xxxxx dbname=app"},
		{"key-value-escaped-quote", `host=db password='it\'s' dbname=app`, "host=db password=xxxxx dbname=app"},
		{"key-value-escaped-space", `host=db password=se\ cret dbname=app`, "host=db password=xxxxx dbname=app"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := pgtest.RedactDSN(tt.in); got != tt.want {
				t.Errorf("RedactDSN(%q): got %q; want %q", tt.in, got, tt.want)
			}
		})
	}
}

// TestNamesAreValidAndUnique: database names and application_names from long, odd test
// names stay within Postgres' 63 bytes and differ per database.
func TestNamesAreValidAndUnique(t *testing.T) {
	srv := sharedLocal(t)
	seen := map[string]bool{}
	for i := range 3 {
		t.Run(strings.Repeat("Very Long/Odd-Name ", 8)+fmt.Sprint(i), func(t *testing.T) {
			db := pgtest.New(t, pgtest.WithProvider(pgtest.ProviderDSN), pgtest.WithDSN(srv.DSN()))
			if len(db.Name) > 63 || len(db.AppName) > 63 {
				t.Errorf("name %q (%d bytes), application_name %q: want at most 63 bytes", db.Name, len(db.Name), db.AppName)
			}
			if seen[db.AppName] {
				t.Errorf("application_name %q given twice", db.AppName)
			}
			seen[db.AppName] = true
			var got string
			if err := db.DB.QueryRowContext(t.Context(), "SELECT current_database()").Scan(&got); err != nil {
				t.Fatalf("current_database: %v", err)
			}
			if got != db.Name {
				t.Errorf("current_database(): got %q; want %q", got, db.Name)
			}
		})
	}
}
