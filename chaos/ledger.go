package chaos

import (
	"context"
	"database/sql"
	"fmt"
)

// ledger is one worker's record of its writes in its current scope, checked against the
// database when it is full and at quiescence.
type ledger struct {
	writes    map[string]Outcome
	order     []string // keys in the order first written
	acked     int64    // acknowledged writes, over every scope
	ambiguous int64
}

func newLedger() *ledger { return &ledger{writes: map[string]Outcome{}} }

// record merges one more attempt of the write key: acknowledged once any attempt was,
// ambiguous once any attempt was (and none acknowledged), else failed.
func (l *ledger) record(key string, o Outcome) {
	prev, ok := l.writes[key]
	switch {
	case !ok:
		l.order = append(l.order, key)
		l.writes[key] = o
	case prev == Acked:
	case o == Acked, o == Ambiguous:
		l.writes[key] = o
	}
	switch o {
	case Acked:
		l.acked++
	case Ambiguous:
		l.ambiguous++
	}
}

func (l *ledger) outcome(key string) Outcome { return l.writes[key] }

func (l *ledger) known(o Outcome) []string {
	var out []string
	for _, k := range l.order {
		if l.writes[k] == o {
			out = append(out, k)
		}
	}
	return out
}

// verify reads every write back through lookup and returns every broken data-safety
// invariant: an acknowledged write missing, a write that failed cleanly stored, a write
// stored twice.
func (l *ledger) verify(ctx context.Context, db *sql.DB, w *Worker, lookup func(context.Context, *sql.DB, *Worker, string) (int, error)) ([]string, error) {
	if lookup == nil {
		return nil, nil
	}
	var problems []string
	for _, k := range l.order {
		n, err := lookup(ctx, db, w, k)
		if err != nil {
			return nil, fmt.Errorf("verify ledger: look up %q: %w", k, err)
		}
		switch o := l.writes[k]; {
		case o == Acked && n == 0:
			problems = append(problems, fmt.Sprintf("write %q is not stored although it was acknowledged (a lost write)", k))
		case o == Failed && n > 0:
			problems = append(problems, fmt.Sprintf("write %q is stored although the caller was told it failed", k))
		case n > 1:
			problems = append(problems, fmt.Sprintf("write %q is stored %d times", k, n))
		}
	}
	return problems, nil
}
