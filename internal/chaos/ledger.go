package chaos

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/sessionsafe/sessionsafe/handlers"
)

// outcome is what a worker knows of one write.
type outcome int

const (
	acked     outcome = iota + 1 // the caller was told it succeeded: it must be there
	ambiguous                    // the outcome is unknown (commit cut after sending, server chaos)
	failed                       // the caller was told it failed, cleanly: it must not be there
)

// threadLedger is what a worker wrote to one thread it created.
type threadLedger struct {
	id      string
	title   string          // creation title, for messages
	titles  map[string]bool // the titles the thread may carry now
	deleted outcome         // 0: never deleted
	keys    map[string]outcome
	msgs    map[string]outcome // by client message id
}

// ledger is one worker's record of its writes, checked against the database at the end.
type ledger struct {
	threads       map[string]*threadLedger
	order         []string // thread ids in creation order
	createFailed  map[string]bool
	createUnknown map[string]bool
	acked         int64
	ambiguous     int64
}

func newLedger() *ledger {
	return &ledger{threads: map[string]*threadLedger{}, createFailed: map[string]bool{}, createUnknown: map[string]bool{}}
}

func (l *ledger) count(o outcome) {
	switch o {
	case acked:
		l.acked++
	case ambiguous:
		l.ambiguous++
	}
}

func (l *ledger) created(id, title string) {
	l.threads[id] = &threadLedger{id: id, title: title, titles: map[string]bool{title: true},
		keys: map[string]outcome{}, msgs: map[string]outcome{}}
	l.order = append(l.order, id)
	l.count(acked)
}

func (l *ledger) createOutcome(title string, o outcome) {
	if o == ambiguous {
		l.createUnknown[title] = true
	} else {
		l.createFailed[title] = true
	}
	l.count(o)
}

// live returns the threads the worker may still use (not deleted for sure), in creation order.
func (l *ledger) live() []*threadLedger {
	var out []*threadLedger
	for _, id := range l.order {
		if t := l.threads[id]; t.deleted != acked {
			out = append(out, t)
		}
	}
	return out
}

func (t *threadLedger) setTitle(title string, o outcome) {
	switch o {
	case acked:
		t.titles = map[string]bool{title: true}
	case ambiguous:
		t.titles[title] = true
	}
}

// mergeMsg records one more attempt of a send: the message's overall outcome.
func (t *threadLedger) mergeMsg(id string, o outcome) {
	prev, ok := t.msgs[id]
	switch {
	case !ok, o == acked:
		t.msgs[id] = o
	case prev == ambiguous || o == ambiguous:
		t.msgs[id] = ambiguous
	}
}

// verify reads the worker's threads back through svc (a clean pool, no faults, no planted
// bug) and returns every broken data-safety invariant, one a line.
func (l *ledger) verify(ctx context.Context, svc *handlers.Service, user string) ([]string, error) {
	var problems []string
	live := map[string]handlers.Thread{}
	for off := 0; ; off += 100 {
		page, err := svc.ListThreads(ctx, user, handlers.Page{Offset: off, Limit: 100})
		if err != nil {
			return nil, fmt.Errorf("verify ledger: list threads: %w", err)
		}
		for _, t := range page {
			live[t.ID] = t
		}
		if len(page) < 100 {
			break
		}
	}
	for id, t := range live {
		if _, known := l.threads[id]; !known && l.createFailed[t.Title] && !l.createUnknown[t.Title] {
			problems = append(problems, fmt.Sprintf("thread %s %q exists although its create failed cleanly (the caller was told it failed)", id, t.Title))
		}
	}
	for _, id := range l.order {
		var t *handlers.Thread
		if lt, ok := live[id]; ok {
			t = &lt
		}
		p, err := l.verifyThread(ctx, svc, user, l.threads[id], t)
		if err != nil {
			return nil, err
		}
		problems = append(problems, p...)
	}
	return problems, nil
}

// verifyThread checks one thread the worker created against t, its state read back (nil:
// not live), and returns every broken invariant.
func (l *ledger) verifyThread(ctx context.Context, svc *handlers.Service, user string, tl *threadLedger, t *handlers.Thread) ([]string, error) {
	var problems []string
	bad := func(format string, args ...any) { problems = append(problems, fmt.Sprintf(format, args...)) }
	id := tl.id
	isLive := t != nil
	switch {
	case tl.deleted == acked && isLive:
		bad("thread %s %q is live although its delete was acknowledged", id, tl.title)
		return problems, nil
	case !isLive && tl.deleted == 0, !isLive && tl.deleted == failed:
		bad("thread %s %q is missing although its create was acknowledged and no delete succeeded", id, tl.title)
		return problems, nil
	case !isLive:
		return problems, nil
	}
	if !tl.titles[t.Title] {
		bad("thread %s has title %q; want one of %s", id, t.Title, keys(tl.titles))
	}
	for k, o := range tl.keys {
		_, has := t.Metadata[k]
		switch {
		case o == acked && !has:
			bad("thread %s metadata lacks %q although that update was acknowledged (lost update)", id, k)
		case o == failed && has:
			bad("thread %s metadata has %q although that update failed cleanly", id, k)
		}
	}
	var msgs []handlers.Message
	for off := 0; ; off += 100 {
		page, err := svc.GetMessages(ctx, user, id, handlers.Page{Offset: off, Limit: 100})
		if errors.Is(err, handlers.ErrNotFound) && tl.deleted == ambiguous {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("verify ledger: get messages of %s: %w", id, err)
		}
		msgs = append(msgs, page...)
		if len(page) < 100 {
			break
		}
	}
	seen := map[string]int{}
	for i, m := range msgs {
		seen[m.ClientMessageID]++
		if m.Seq != int64(i+1) {
			bad("thread %s message %d has seq %d; want %d (gap-free, in order)", id, i, m.Seq, i+1)
			break
		}
	}
	if t.MessageCount != len(msgs) {
		bad("thread %s message_count %d; want %d (the messages stored)", id, t.MessageCount, len(msgs))
	}
	for cid, n := range seen {
		if n > 1 && cid != "" {
			bad("thread %s holds message %q %d times (a retried send was stored twice)", id, cid, n)
		}
	}
	for cid, o := range tl.msgs {
		n := seen[cid]
		switch {
		case o == acked && n == 0:
			bad("thread %s lacks message %q although its send was acknowledged", id, cid)
		case o == failed && n > 0:
			bad("thread %s holds message %q although its send failed cleanly", id, cid)
		}
	}
	return problems, nil
}

func keys(m map[string]bool) string {
	var out []string
	for k := range m {
		out = append(out, fmt.Sprintf("%q", k))
	}
	sort.Strings(out)
	return strings.Join(out, ", ")
}
