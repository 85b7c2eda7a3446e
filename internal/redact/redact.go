package redact

import (
	"net/url"
	"regexp"
	"strings"
)

// Mask replaces a password wherever one is redacted.
const Mask = "xxxxx"

var (
	// urlUser finds scheme://user: — the password, if any, starts right after it.
	urlUser = regexp.MustCompile(`[a-zA-Z][a-zA-Z0-9+.-]*://[^\s:/@?#]*:`)
	// kvKey finds password=, PGPASSWORD=, sslpassword= (spaces around '=' allowed, as libpq
	// allows them); the value starts right after it.
	kvKey = regexp.MustCompile(`(?i)[a-z_]*password\s*=\s*`)
	// urlStart tells a URL DSN from a keyword/value one.
	urlStart = regexp.MustCompile(`^\s*[a-zA-Z][a-zA-Z0-9+.-]*://`)
)

// DSN returns dsn with its password replaced by [Mask]. It reads URL DSNs
// (postgres://user:pass@host/db?password=...) and keyword/value DSNs
// (host=h password='se cret'), and errs on the side of hiding too much: in a URL the
// password runs to the last '@' of the DSN, so a raw '@', '/', space or quote in it stays
// hidden too, and a keyword/value password may be quoted, escaped or unterminated.
func DSN(dsn string) string {
	if urlStart.MatchString(dsn) {
		return mask(dsn, true)
	}
	return mask(dsn, false)
}

// Text replaces every password found in s: the passwords of URL DSNs and the values of
// password=... pairs (keyword/value DSNs, URL query parameters, PGPASSWORD=...). In text a
// URL's password ends at its last '@' before the first '/', '?', '#', line end or next URL.
func Text(s string) string {
	if s == "" {
		return s
	}
	return mask(s, false)
}

// Args returns a copy of a command line with every password redacted.
func Args(args []string) []string {
	out := make([]string, len(args))
	for i, a := range args {
		out[i] = Text(a)
	}
	return out
}

// span is a byte range [from, to) of a password, found by a key (password=, user:) that
// starts at key.
type span struct{ key, from, to int }

// mask hides every password span of s. whole says s is one URL DSN: its password then
// runs to the DSN's last '@', and a query password to the next '&' or '#'.
func mask(s string, whole bool) string {
	spans := passwords(s, whole)
	if len(spans) == 0 {
		return s
	}
	var b strings.Builder
	last := 0
	for _, sp := range spans {
		if sp.key < last {
			continue // found inside a password already hidden: "password=" in a password
		}
		b.WriteString(s[last:sp.from])
		b.WriteString(Mask)
		last = sp.to
	}
	b.WriteString(s[last:])
	return b.String()
}

// passwords returns the password spans of s, in order of their start.
func passwords(s string, whole bool) []span {
	var spans []span
	if whole {
		// One URL DSN: the userinfo runs from "://" to the last '@', the password from the
		// userinfo's first ':' (a user name cannot hold a raw ':').
		i := strings.Index(s, "://") + len("://")
		if at := strings.LastIndexByte(s, '@'); at > i {
			if c := strings.IndexByte(s[i:at], ':'); c >= 0 && i+c+1 < at {
				spans = append(spans, span{i, i + c + 1, at})
			}
		}
	} else {
		for _, m := range urlUser.FindAllStringIndex(s, -1) {
			if end := userinfoEnd(s, m[1]); end > m[1] {
				spans = append(spans, span{m[0], m[1], end})
			}
		}
	}
	for pos := 0; pos < len(s); {
		m := kvKey.FindStringIndex(s[pos:])
		if m == nil {
			break
		}
		key, start := pos+m[0], pos+m[1]
		inQuery := key > 0 && (s[key-1] == '?' || s[key-1] == '&')
		var end int
		switch {
		case start == len(s):
			end = start
		case inQuery:
			end = queryValueEnd(s, start, whole)
		case s[start] == '\'':
			end = quotedEnd(s, start)
		default:
			end = unquotedEnd(s, start)
		}
		if end > start {
			spans = append(spans, span{key, start, end})
		}
		// The next key starts after this value: "password=password=x" has one password.
		pos = max(end, start)
	}
	sortSpans(spans)
	return spans
}

// userinfoEnd returns where the password of a URL in text that starts at start ends: at
// the last '@' before the first '/', '?', '#', line end or next URL, or start when there
// is no '@' (no userinfo: that was host:port).
func userinfoEnd(s string, start int) int {
	region := s[start:]
	if i := strings.IndexAny(region, "/?#\n"); i >= 0 {
		region = region[:i]
	}
	if i := strings.Index(region, "://"); i >= 0 {
		region = region[:i]
	}
	at := strings.LastIndexByte(region, '@')
	if at < 0 {
		return start
	}
	return start + at
}

// queryValueEnd returns the end of a URL query value starting at start.
func queryValueEnd(s string, start int, whole bool) int {
	stop := "&#"
	if !whole {
		stop += " \t\r\n"
	}
	if i := strings.IndexAny(s[start:], stop); i >= 0 {
		return start + i
	}
	return len(s)
}

// quotedEnd returns the end (past the closing quote) of a single-quoted libpq value
// starting at start; backslash escapes the next byte. Unterminated, it runs to the end.
func quotedEnd(s string, start int) int {
	for i := start + 1; i < len(s); i++ {
		switch s[i] {
		case '\\':
			i++
		case '\'':
			return i + 1
		}
	}
	return len(s)
}

// unquotedEnd returns the end of an unquoted libpq value starting at start: the next
// unescaped whitespace.
func unquotedEnd(s string, start int) int {
	for i := start; i < len(s); i++ {
		switch s[i] {
		case '\\':
			i++
		case ' ', '\t', '\r', '\n', '\f', '\v':
			return i
		}
	}
	return len(s)
}

func sortSpans(spans []span) {
	for i := 1; i < len(spans); i++ {
		for j := i; j > 0 && spans[j].key < spans[j-1].key; j-- {
			spans[j], spans[j-1] = spans[j-1], spans[j]
		}
	}
}

// Secrets hides passwords known by value (the password of a DSN given on the command
// line), wherever they appear: in a driver error that echoes it, for example. The zero
// value and nil hide only what [Text] finds.
type Secrets struct{ values []string }

// NewSecrets returns a Secrets hiding the passwords of dsns, as written and decoded.
func NewSecrets(dsns ...string) *Secrets {
	r := &Secrets{}
	for _, d := range dsns {
		for _, sp := range passwords(d, urlStart.MatchString(d)) {
			raw := d[sp.from:sp.to]
			for _, p := range []string{raw, decode(raw)} {
				// Too short a value would mask innocent text everywhere.
				if len(p) >= 3 {
					r.values = append(r.values, p)
				}
			}
		}
	}
	return r
}

// decode returns a password as the server sees it: percent-decoded, or unquoted and
// unescaped.
func decode(raw string) string {
	if strings.HasPrefix(raw, "'") {
		raw = strings.TrimSuffix(strings.TrimPrefix(raw, "'"), "'")
	}
	if strings.Contains(raw, "\\") {
		var b strings.Builder
		for i := 0; i < len(raw); i++ {
			if raw[i] == '\\' && i+1 < len(raw) {
				i++
			}
			b.WriteByte(raw[i])
		}
		raw = b.String()
	}
	if p, err := url.PathUnescape(raw); err == nil {
		return p
	}
	return raw
}

// Hide hides every known secret and every password [Text] finds in s.
func (r *Secrets) Hide(s string) string {
	s = Text(s)
	if r == nil {
		return s
	}
	for _, p := range r.values {
		s = strings.ReplaceAll(s, p, Mask)
	}
	return s
}
