package report

import (
	"net/url"
	"regexp"
	"strings"
)

// Mask replaces a password wherever one is redacted.
const Mask = "xxxxx"

var (
	// scheme://user:password@host — the password runs to the last '@' before the host.
	urlPassword = regexp.MustCompile(`([a-zA-Z][a-zA-Z0-9+.-]*://[^:/@\s'"]*:)([^\s'"]*)(@[^@\s'"]*)`)
	// password=secret or password='se cret' in a keyword/value DSN, and PGPASSWORD=secret.
	kvPassword = regexp.MustCompile(`(?i)\b((?:pg)?password\s*=\s*)('(?:[^'\\]|\\.)*'|[^\s&'"]+)`)
)

// RedactDSN returns dsn with its password replaced by Mask. It accepts URL DSNs
// (postgres://user:pass@host/db?password=...) and keyword/value DSNs (password=...).
func RedactDSN(dsn string) string {
	if u, err := url.Parse(dsn); err == nil && u.Scheme != "" && u.Host != "" {
		if _, ok := u.User.Password(); ok {
			u.User = url.UserPassword(u.User.Username(), Mask)
		}
		q := u.Query()
		changed := false
		for k := range q {
			if strings.EqualFold(k, "password") {
				q.Set(k, Mask)
				changed = true
			}
		}
		if changed {
			u.RawQuery = q.Encode()
		}
		return strings.Replace(u.String(), ":"+url.QueryEscape(Mask)+"@", ":"+Mask+"@", 1)
	}
	return RedactText(dsn)
}

// RedactText replaces every password found in s (in URL DSNs and in password=... pairs).
func RedactText(s string) string {
	if s == "" {
		return s
	}
	s = urlPassword.ReplaceAllString(s, "${1}"+Mask+"${3}")
	return kvPassword.ReplaceAllString(s, "${1}"+Mask)
}

// RedactArgs returns a copy of a command line with every password redacted.
func RedactArgs(args []string) []string {
	out := make([]string, len(args))
	for i, a := range args {
		out[i] = RedactText(a)
	}
	return out
}

// Redactor also hides secrets known by value (a password taken from a DSN flag), wherever
// they appear: in a driver error that echoes the DSN, for example.
type Redactor struct{ secrets []string }

// NewRedactor returns a Redactor hiding the passwords of dsns.
func NewRedactor(dsns ...string) *Redactor {
	r := &Redactor{}
	for _, d := range dsns {
		if p := passwordOf(d); p != "" {
			r.secrets = append(r.secrets, p)
		}
	}
	return r
}

// Redact hides every known secret and every recognisable password in s.
func (r *Redactor) Redact(s string) string {
	s = RedactText(s)
	if r == nil {
		return s
	}
	for _, p := range r.secrets {
		if len(p) >= 3 {
			s = strings.ReplaceAll(s, p, Mask)
		}
	}
	return s
}

func passwordOf(dsn string) string {
	if u, err := url.Parse(dsn); err == nil && u.Scheme != "" {
		if p, ok := u.User.Password(); ok {
			return p
		}
		if p := u.Query().Get("password"); p != "" {
			return p
		}
		return ""
	}
	m := kvPassword.FindStringSubmatch(dsn)
	if m == nil {
		return ""
	}
	return strings.Trim(m[2], "'")
}
