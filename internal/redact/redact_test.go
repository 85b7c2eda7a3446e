package redact_test

import (
	"net/url"
	"strings"
	"testing"

	"github.com/sessionsafe/sessionsafe/internal/redact"
)

func TestRedactDSN(t *testing.T) {
	tests := []struct{ name, in, want string }{
		{"url", "postgres://app:s3cret@db:5432/app?sslmode=disable", "postgres://app:xxxxx@db:5432/app?sslmode=disable"},
		{"url-no-password", "postgres://app@db:5432/app", "postgres://app@db:5432/app"},
		{"url-no-user", "postgres://db:5432/app", "postgres://db:5432/app"},
		{"url-percent-encoded", "postgres://u:se%20cret@h/db", "postgres://u:xxxxx@h/db"},
		{"url-raw-space", "postgres://u:se cret@h/db", "postgres://u:xxxxx@h/db"},
		{"url-raw-at", "postgresql://u:p@ss@h/db", "postgresql://u:xxxxx@h/db"},
		{"url-raw-slash", "postgres://u:a/b@h/db", "postgres://u:xxxxx@h/db"},
		{"url-raw-quote", `postgres://u:it's"x@h/db`, "postgres://u:xxxxx@h/db"},
		{"url-query-password", "postgres://app@db/app?password=s3cret&sslmode=disable", "postgres://app@db/app?password=xxxxx&sslmode=disable"},
		{"url-query-raw-space", "postgres://app@db/app?password=se cret&sslmode=disable", "postgres://app@db/app?password=xxxxx&sslmode=disable"},
		{"url-both", "postgres://u:a@h/db?password=b", "postgres://u:xxxxx@h/db?password=xxxxx"},
		{"kv", "host=db user=app password=s3cret dbname=app", "host=db user=app password=xxxxx dbname=app"},
		{"kv-quoted-space", "host=db password='se cret' dbname=app", "host=db password=xxxxx dbname=app"},
		{"kv-quoted-escaped-quote", `host=db password='it\'s' dbname=app`, "host=db password=xxxxx dbname=app"},
		{"kv-quoted-escaped-backslash", `host=db password='a\\' dbname=app`, "host=db password=xxxxx dbname=app"},
		{"kv-unquoted-escaped-space", `host=db password=se\ cret dbname=app`, "host=db password=xxxxx dbname=app"},
		{"kv-spaces-around-equals", "host=db password = 'se cret' dbname=app", "host=db password = xxxxx dbname=app"},
		{"kv-unterminated-quote", "host=db password='se cret dbname=app", "host=db password=xxxxx"},
		{"kv-upper", "host=db PASSWORD=s3cret", "host=db PASSWORD=xxxxx"},
		{"kv-sslpassword", "host=db sslpassword=s3cret", "host=db sslpassword=xxxxx"},
		{"empty", "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := redact.DSN(tt.in); got != tt.want {
				t.Errorf("DSN(%q): got %q; want %q", tt.in, got, tt.want)
			}
		})
	}
}

func TestRedactText(t *testing.T) {
	tests := []struct{ name, in, want string }{
		{"url", "connect postgres://app:s3cret@db/app: refused", "connect postgres://app:xxxxx@db/app: refused"},
		{"url-raw-space", "connect postgres://u:se cret@h/db: refused", "connect postgres://u:xxxxx@h/db: refused"},
		{"two-urls", "a postgres://u:p1@h/db b postgres://v:p2@h/db", "a postgres://u:xxxxx@h/db b postgres://v:xxxxx@h/db"},
		{"http-port-is-no-password", "listening on http://127.0.0.1:8080/debug, mail me@example.com", "listening on http://127.0.0.1:8080/debug, mail me@example.com"},
		{"kv", `parse "host=db password='se cret' dbname=app": bad`, `parse "host=db password=xxxxx dbname=app": bad`},
		{"pgpassword", "PGPASSWORD=s3cret psql", "PGPASSWORD=xxxxx psql"},
		{"prose", "password authentication failed for user app", "password authentication failed for user app"},
		{"no-dsn", "plain text: no secret", "plain text: no secret"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := redact.Text(tt.in); got != tt.want {
				t.Errorf("Text(%q): got %q; want %q", tt.in, got, tt.want)
			}
		})
	}
}

func TestSecretsHide(t *testing.T) {
	tests := []struct{ name, dsn, text string }{
		{"url", "postgres://app:hunter22@db/app", `password authentication failed for "hunter22"`},
		{"url-percent-encoded", "postgres://app:hun%20ter@db/app", `failed for "hun ter"`},
		{"kv-quoted", `host=db password='it\'s me'`, `failed for "it's me"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := redact.NewSecrets(tt.dsn).Hide(tt.text)
			if !strings.Contains(got, redact.Mask) {
				t.Errorf("Hide(%q): got %q; want the password masked", tt.text, got)
			}
		})
	}
}

// dsnForms writes password pw into a DSN in every form a user may give it. Raw URL forms
// are only valid for passwords without '/', '?' or '#' (pgx would read those as the path,
// query or fragment), and are left out otherwise.
func dsnForms(pw string) map[string]string {
	kvEscape := strings.NewReplacer(`\`, `\\`, `'`, `\'`)
	unquoted := strings.NewReplacer(`\`, `\\`, `'`, `\'`, " ", `\ `, "\t", "\\\t", "\n", "\\\n", "\r", "\\\r", "\f", "\\\f", "\v", "\\\v")
	forms := map[string]string{
		"url-encoded": (&url.URL{Scheme: "postgres", User: url.UserPassword("app", pw), Host: "db:5432", Path: "/app", RawQuery: "sslmode=disable"}).String(),
		"url-query":   "postgres://app@db:5432/app?password=" + url.QueryEscape(pw) + "&sslmode=disable",
		"kv-quoted":   "host=db user=app password='" + kvEscape.Replace(pw) + "' dbname=app",
		"kv-unquoted": "host=db user=app password=" + unquoted.Replace(pw) + " dbname=app",
		"url-raw":     "postgres://app:" + pw + "@db:5432/app?sslmode=disable",
	}
	return forms
}

// FuzzRedactDSN: whatever the password, the redacted DSN is the same as for any other
// password — so no byte of the password can be in it.
func FuzzRedactDSN(f *testing.F) {
	for _, s := range []string{
		"s3cret", "se cret", "it's", `it\'s`, `back\slash`, "se%20cret", "p@ss@word", "a/b?c#d",
		"'", `\`, "''", " lead", "trail ", "pass=word", "password=x", "://", "\n", "ünïcødé", "xxxxx",
	} {
		f.Add(s)
	}
	want := dsnForms("pw")
	for form, dsn := range want {
		want[form] = redact.DSN(dsn)
	}
	f.Fuzz(func(t *testing.T, pw string) {
		if pw == "" {
			return // no password, nothing to hide: an empty one is kept as written
		}
		for form, dsn := range dsnForms(pw) {
			got := redact.DSN(dsn)
			if got != want[form] {
				t.Errorf("%s: DSN(%q): got %q; want %q (the output must not depend on the password)", form, dsn, got, want[form])
			}
			if len(pw) >= 4 && strings.Contains(got, pw) && !strings.Contains(want[form], pw) {
				t.Errorf("%s: DSN(%q) = %q: the password %q survived", form, dsn, got, pw)
			}
		}
	})
}
