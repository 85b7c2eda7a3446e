package faults

import (
	"database/sql/driver"
	"fmt"
	"io"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// StepKind is the kind of one step of a run: one call database/sql made into
// the driver.
type StepKind int

// The step kinds, in the order of a connection's life.
const (
	StepConnect   StepKind = iota + 1 // open a connection
	StepBegin                         // begin a transaction
	StepPrepare                       // prepare a statement
	StepExec                          // exec (directly or through a prepared statement)
	StepQuery                         // query (directly or through a prepared statement)
	StepNext                          // read one row (or the end of the rows)
	StepRowsClose                     // close rows
	StepStmtClose                     // close a prepared statement
	StepCommit                        // commit
	StepRollback                      // roll back
	StepReset                         // reset the session before the pool hands the conn out again
	StepIsValid                       // ask the conn whether it is still valid
	StepPing                          // ping
	StepClose                         // close the connection
)

var stepKindNames = [...]string{
	StepConnect:   "connect",
	StepBegin:     "begin",
	StepPrepare:   "prepare",
	StepExec:      "exec",
	StepQuery:     "query",
	StepNext:      "next",
	StepRowsClose: "rows-close",
	StepStmtClose: "stmt-close",
	StepCommit:    "commit",
	StepRollback:  "rollback",
	StepReset:     "reset",
	StepIsValid:   "is-valid",
	StepPing:      "ping",
	StepClose:     "close",
}

// StepKinds returns every step kind, in order.
func StepKinds() []StepKind {
	ks := make([]StepKind, 0, len(stepKindNames)-1)
	for k := StepConnect; k <= StepClose; k++ {
		ks = append(ks, k)
	}
	return ks
}

// String returns the kind's name as plans write it, such as "commit" or
// "rows-close".
func (k StepKind) String() string {
	if k > 0 && int(k) < len(stepKindNames) {
		return stepKindNames[k]
	}
	return fmt.Sprintf("StepKind(%d)", int(k))
}

// ParseStepKind returns the step kind named s (as String writes it).
func ParseStepKind(s string) (StepKind, error) {
	for k := StepConnect; k <= StepClose; k++ {
		if stepKindNames[k] == s {
			return k, nil
		}
	}
	return 0, fmt.Errorf("parse step kind %q: %w", s, ErrUnknownStepKind)
}

// Step is one recorded step of a run.
type Step struct {
	Index       int      // 1-based position in the trace; plans target it with step=Index
	Kind        StepKind // what database/sql asked the driver to do
	SQL         string   // prepare, exec, query (for a prepared statement, its SQL); next and rows-close: the query's SQL
	Fingerprint string   // SQL with whitespace normalised and literals replaced by ?
	Args        int      // number of arguments of an exec or query
	Conn        uint64   // the injector's id of the connection (1, 2, ... in connect order)
	Prepared    bool     // exec or query through a prepared statement
	ReadOnly    bool     // begin: a read-only transaction
	Isolation   int      // begin: the driver.IsolationLevel asked for (0: the server's default)
	// Columns are the column names of a query's rows (on the query step and
	// on each of its next steps).
	Columns []string
	// Rows: on a query step, every row read through its rows (up to the
	// injector's bound, see WithMaxRows; Truncated says more were read); on
	// a next step, the one row read (none at the end of the rows). Values are
	// copies of what the driver returned.
	Rows      [][]driver.Value
	Truncated bool
	// RowsAffected is what an exec reported: -1 when unknown or on error.
	RowsAffected int64
	// Err is the error the caller saw from the step: the driver's, the
	// injected one, or io.EOF at the end of the rows.
	Err error
	// Fault is the fault injected at this step, if any.
	Fault *Fault
	// Wire: recorded from the frontend messages alone (faults.PgxInjector):
	// no rows or affected counts were seen, and none are printed.
	Wire bool
}

// Trace is the steps of one run, in order.
type Trace []Step

// String prints the trace one step a line, e.g.
//
//	1 connect    conn=1
//	2 begin      conn=1 read-only
//	3 query      conn=1 SELECT id FROM t WHERE id = $1 args=1 -> 1 row [id]
//	4 next       conn=1 [7]
//	5 next       conn=1 end
//	6 rows-close conn=1
//	7 commit     conn=1 ! pgerr=40001: ERROR: could not serialize access ... (SQLSTATE 40001)
func (t Trace) String() string {
	var b strings.Builder
	for i := range t {
		b.WriteString(t[i].String())
		b.WriteByte('\n')
	}
	return b.String()
}

// String prints the step on one line (see Trace.String).
func (s Step) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%3d %-10s conn=%d", s.Index, s.Kind, s.Conn)
	switch s.Kind {
	case StepBegin:
		if s.ReadOnly {
			b.WriteString(" read-only")
		}
		if s.Isolation != 0 {
			fmt.Fprintf(&b, " isolation=%d", s.Isolation)
		}
	case StepPrepare, StepExec, StepQuery:
		b.WriteByte(' ')
		b.WriteString(shorten(s.Fingerprint, 100))
		if s.Prepared {
			b.WriteString(" (prepared)")
		}
		fmt.Fprintf(&b, " args=%d", s.Args)
		if s.Kind == StepExec && s.Err == nil && !s.Wire {
			fmt.Fprintf(&b, " -> %d affected", s.RowsAffected)
		}
		if s.Kind == StepQuery && s.Err == nil && !s.Wire {
			fmt.Fprintf(&b, " -> %d row(s)", len(s.Rows))
			if s.Truncated {
				b.WriteString("+")
			}
			fmt.Fprintf(&b, " %v", s.Columns)
		}
	case StepNext:
		if len(s.Rows) == 1 {
			b.WriteByte(' ')
			b.WriteString(shorten(formatRow(s.Rows[0]), 100))
		} else if s.Err == io.EOF {
			b.WriteString(" end")
		}
	}
	if s.Fault != nil {
		fmt.Fprintf(&b, " ! %s", s.Fault)
	}
	if s.Err != nil && s.Err != io.EOF {
		fmt.Fprintf(&b, " err: %s", shorten(s.Err.Error(), 120))
	}
	return b.String()
}

func formatRow(row []driver.Value) string {
	var b strings.Builder
	b.WriteByte('[')
	for i, v := range row {
		if i > 0 {
			b.WriteString(", ")
		}
		switch v := v.(type) {
		case nil:
			b.WriteString("NULL")
		case string:
			fmt.Fprintf(&b, "%q", v)
		case []byte:
			fmt.Fprintf(&b, "%q", v)
		case time.Time:
			b.WriteString(v.Format(time.RFC3339Nano))
		default:
			fmt.Fprint(&b, v)
		}
	}
	b.WriteByte(']')
	return b.String()
}

func shorten(s string, n int) string {
	if len(s) <= n {
		return s
	}
	cut := n
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "..."
}

// Fingerprint returns a stable form of an SQL text: comments removed,
// whitespace runs collapsed to one space, string, dollar-quoted and numeric
// literals replaced by ?, placeholders ($1) and identifiers kept.
func Fingerprint(sql string) string {
	var b strings.Builder
	b.Grow(len(sql))
	space := false
	emit := func(s string) {
		if space && b.Len() > 0 {
			b.WriteByte(' ')
		}
		space = false
		b.WriteString(s)
	}
	prevIdent := false // the previous byte written continues an identifier or placeholder
	for i := 0; i < len(sql); {
		c := sql[i]
		switch {
		case c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v':
			space = true
			prevIdent = false
			i++
		case c == '-' && i+1 < len(sql) && sql[i+1] == '-':
			for i < len(sql) && sql[i] != '\n' {
				i++
			}
			space = true
			prevIdent = false
		case c == '/' && i+1 < len(sql) && sql[i+1] == '*':
			end := strings.Index(sql[i+2:], "*/")
			if end < 0 {
				i = len(sql)
			} else {
				i += 2 + end + 2
			}
			space = true
			prevIdent = false
		case c == '\'' || ((c == 'E' || c == 'e') && !prevIdent && i+1 < len(sql) && sql[i+1] == '\''):
			if c != '\'' {
				i++
			}
			i++
			for i < len(sql) {
				if sql[i] == '\\' && c != '\'' {
					i += 2
					continue
				}
				if sql[i] == '\'' {
					if i+1 < len(sql) && sql[i+1] == '\'' {
						i += 2
						continue
					}
					i++
					break
				}
				i++
			}
			emit("?")
			prevIdent = false
		case c == '"':
			j := i + 1
			for j < len(sql) {
				if sql[j] == '"' {
					if j+1 < len(sql) && sql[j+1] == '"' {
						j += 2
						continue
					}
					j++
					break
				}
				j++
			}
			emit(sql[i:min(j, len(sql))])
			i = j
			prevIdent = true
		case c == '$' && !prevIdent:
			j := i + 1
			for j < len(sql) && isDigit(sql[j]) {
				j++
			}
			if j > i+1 { // a placeholder
				emit(sql[i:j])
				i = j
				prevIdent = true
				continue
			}
			// a dollar-quoted string: $tag$ ... $tag$
			k := i + 1
			for k < len(sql) && isIdent(sql[k]) {
				k++
			}
			if k < len(sql) && sql[k] == '$' {
				tag := sql[i : k+1]
				end := strings.Index(sql[k+1:], tag)
				if end < 0 {
					i = len(sql)
				} else {
					i = k + 1 + end + len(tag)
				}
				emit("?")
				prevIdent = false
				continue
			}
			emit("$")
			i++
		case isDigit(c) && !prevIdent, c == '.' && !prevIdent && i+1 < len(sql) && isDigit(sql[i+1]):
			j := i
			for j < len(sql) && (isDigit(sql[j]) || sql[j] == '.') {
				j++
			}
			if j < len(sql) && (sql[j] == 'e' || sql[j] == 'E') {
				k := j + 1
				if k < len(sql) && (sql[k] == '+' || sql[k] == '-') {
					k++
				}
				if k < len(sql) && isDigit(sql[k]) {
					for k < len(sql) && isDigit(sql[k]) {
						k++
					}
					j = k
				}
			}
			emit("?")
			i = j
			prevIdent = false
		default:
			r, n := utf8.DecodeRuneInString(sql[i:])
			emit(sql[i : i+n])
			prevIdent = r == '_' || r == '$' || unicode.IsLetter(r) || unicode.IsDigit(r)
			i += n
		}
	}
	return b.String()
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

func isIdent(c byte) bool {
	return c == '_' || isDigit(c) || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c >= 0x80
}
