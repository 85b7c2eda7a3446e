package threadsuite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/sessionsafe/sessionsafe/chaos"
	"github.com/sessionsafe/sessionsafe/handlers"
)

// ChaosWorkload is the thread handlers under chaos (package chaos): the eight operations
// in a fixed mix, each worker a user of its own (its scope) with its own threads, and a
// ledger of what the worker wrote — every acknowledged write is there, no write that
// failed cleanly is there, no message was stored twice, seq is gap-free — checked as the
// invariant "ledger". The title generator is an external call (chaos.Op.External): a
// transaction held across it is a finding.
func ChaosWorkload() *chaos.Workload {
	wl := &chaos.Workload{
		Name:  "threads",
		Setup: func(_ context.Context, _ *sql.DB, w *chaos.Worker) error { w.State = newLedger(); return nil },
		Invariants: []chaos.Invariant{{Name: "ledger", Check: func(ctx context.Context, db *sql.DB, w *chaos.Worker) ([]string, error) {
			return w.State.(*ledger).verify(ctx, handlers.New(db), w.Scope)
		}}},
		Expected: expected,
	}
	for _, m := range chaosMix {
		wl.Operations = append(wl.Operations, chaos.Operation{Name: m.name, Weight: m.weight,
			Run: func(ctx context.Context, db *sql.DB, o *chaos.Op) error { return chaosOp(ctx, db, o, m.name) }})
	}
	return wl
}

// chaosMix is the operations of the mix, with their weights.
var chaosMix = []struct {
	name   string
	weight int
}{
	{handlers.OpCreateThread, 14},
	{handlers.OpGetThread, 14},
	{handlers.OpListThreads, 8},
	{handlers.OpUpdateThread, 16},
	{handlers.OpSendMessage, 22},
	{handlers.OpGetMessages, 14},
	{handlers.OpAutoRename, 6},
	{handlers.OpDeleteThread, 6},
}

// titleGen is a worker's title generator: deterministic, and an external call.
type titleGen struct {
	o    *chaos.Op
	last string
}

func (g *titleGen) GenerateTitle(ctx context.Context, first string) (string, error) {
	var title string
	err := g.o.External(ctx, "title generator", func(ctx context.Context) error {
		t, err := handlers.FirstWordsTitle{Words: 4}.GenerateTitle(ctx, first)
		title = t
		return err
	})
	g.last = title
	return title, err
}

// expected reports whether err is an answer the handlers give without any failure: a
// missing thread, a conflict (e.g. auto-rename of a thread with no user message), bad input.
func expected(err error) bool {
	var ve *handlers.ValidationError
	return errors.Is(err, handlers.ErrNotFound) || errors.Is(err, handlers.ErrConflict) || errors.As(err, &ve)
}

// chaosOp runs one operation of the mix and records its writes in the worker's ledger. An
// operation on a thread, when the worker has none live, creates one instead.
func chaosOp(ctx context.Context, db *sql.DB, o *chaos.Op, op string) error {
	l := o.Worker.State.(*ledger)
	user := o.Worker.Scope
	live := l.live()
	var th *threadLedger
	if len(live) > 0 {
		th = live[o.Rand.IntN(len(live))]
	}
	if th == nil && op != handlers.OpListThreads {
		op = handlers.OpCreateThread
	}
	titles := &titleGen{o: o}
	s := handlers.New(db, handlers.WithTitleGenerator(titles))
	w, i := o.Worker.ID, o.Index
	switch op {
	case handlers.OpCreateThread:
		title := fmt.Sprintf("w%d-c%d", w, i)
		o.Write("create:" + title)
		t, err := s.CreateThread(ctx, user, handlers.CreateThreadInput{Title: title, Metadata: map[string]any{"op": i}})
		if out := o.Outcome(err); out == chaos.Acked {
			l.created(t.ID, title)
		} else {
			l.createOutcome(title, out)
		}
		return err
	case handlers.OpGetThread:
		_, err := s.GetThread(ctx, user, th.id)
		return checkRead(o, err, th)
	case handlers.OpListThreads:
		_, err := s.ListThreads(ctx, user, handlers.Page{Offset: o.Rand.IntN(3), Limit: 1 + o.Rand.IntN(20)})
		return err
	case handlers.OpUpdateThread:
		title := fmt.Sprintf("w%d-u%d", w, i)
		key := fmt.Sprintf("k%d", i)
		o.Write("update:" + key)
		in := handlers.UpdateThreadInput{Metadata: map[string]any{key: i}}
		if o.Rand.IntN(2) == 0 {
			in.Title = &title
		}
		_, err := s.UpdateThread(ctx, user, th.id, in)
		out := o.Outcome(err)
		if errors.Is(err, handlers.ErrNotFound) {
			out = chaos.Failed
		}
		th.keys[key] = out
		if in.Title != nil {
			th.setTitle(title, out)
		}
		return err
	case handlers.OpSendMessage:
		cid := fmt.Sprintf("w%d-m%d", w, i)
		o.Write("send:" + cid)
		in := handlers.SendMessageInput{Role: "user", Content: fmt.Sprintf("message %d from worker %d", i, w), ClientMessageID: cid}
		_, err := s.SendMessage(ctx, user, th.id, in)
		out := o.Outcome(err)
		th.mergeMsg(cid, out)
		if err != nil && (out == chaos.Ambiguous || handlers.IsRetryable(err)) && ctx.Err() == nil {
			// Retry once with the same client id: the send must stay idempotent.
			_, err = s.SendMessage(ctx, user, th.id, in)
			th.mergeMsg(cid, o.Outcome(err))
		}
		return err
	case handlers.OpGetMessages:
		_, err := s.GetMessages(ctx, user, th.id, handlers.Page{Offset: 0, Limit: 1 + o.Rand.IntN(50)})
		return checkRead(o, err, th)
	case handlers.OpAutoRename:
		o.Write(fmt.Sprintf("rename:%d", i))
		t, err := s.AutoRename(ctx, user, th.id)
		switch out := o.Outcome(err); {
		case out == chaos.Acked:
			th.setTitle(t.Title, chaos.Acked)
		case titles.last != "":
			// The title was generated: its write may or may not have happened.
			th.setTitle(titles.last, chaos.Ambiguous)
		}
		return err
	case handlers.OpDeleteThread:
		o.Write(fmt.Sprintf("delete:%d", i))
		err := s.DeleteThread(ctx, user, th.id)
		out := o.Outcome(err)
		switch {
		case errors.Is(err, handlers.ErrNotFound) && th.deleted == chaos.Ambiguous:
			th.deleted = chaos.Acked // an earlier ambiguous delete did happen
		case th.deleted == chaos.Acked:
		case th.deleted == chaos.Ambiguous && out == chaos.Failed:
		default:
			th.deleted = out
		}
		return err
	}
	return fmt.Errorf("threadsuite: unknown chaos operation %q", op)
}

// checkRead notes a read of a thread the worker knows is live answering "not found".
func checkRead(o *chaos.Op, err error, th *threadLedger) error {
	if errors.Is(err, handlers.ErrNotFound) && th.deleted == 0 && !o.Faulted() {
		o.Inconsistent(fmt.Sprintf("thread %s answered not found to its owner although it was never deleted", th.id))
	}
	return err
}

// threadLedger is what a worker wrote to one thread it created.
type threadLedger struct {
	id      string
	title   string          // creation title, for messages
	titles  map[string]bool // the titles the thread may carry now
	deleted chaos.Outcome   // 0: never deleted
	keys    map[string]chaos.Outcome
	msgs    map[string]chaos.Outcome // by client message id
}

// ledger is one worker's record of its threads, checked against the database.
type ledger struct {
	threads       map[string]*threadLedger
	order         []string // thread ids in creation order
	createFailed  map[string]bool
	createUnknown map[string]bool
}

func newLedger() *ledger {
	return &ledger{threads: map[string]*threadLedger{}, createFailed: map[string]bool{}, createUnknown: map[string]bool{}}
}

func (l *ledger) created(id, title string) {
	l.threads[id] = &threadLedger{id: id, title: title, titles: map[string]bool{title: true},
		keys: map[string]chaos.Outcome{}, msgs: map[string]chaos.Outcome{}}
	l.order = append(l.order, id)
}

func (l *ledger) createOutcome(title string, o chaos.Outcome) {
	if o == chaos.Ambiguous {
		l.createUnknown[title] = true
	} else {
		l.createFailed[title] = true
	}
}

// live returns the threads the worker may still use (not deleted for sure), in creation order.
func (l *ledger) live() []*threadLedger {
	var out []*threadLedger
	for _, id := range l.order {
		if t := l.threads[id]; t.deleted != chaos.Acked {
			out = append(out, t)
		}
	}
	return out
}

func (t *threadLedger) setTitle(title string, o chaos.Outcome) {
	switch o {
	case chaos.Acked:
		t.titles = map[string]bool{title: true}
	case chaos.Ambiguous:
		t.titles[title] = true
	}
}

// mergeMsg records one more attempt of a send: the message's overall chaos.Outcome.
func (t *threadLedger) mergeMsg(id string, o chaos.Outcome) {
	prev, ok := t.msgs[id]
	switch {
	case !ok, o == chaos.Acked:
		t.msgs[id] = o
	case prev == chaos.Ambiguous || o == chaos.Ambiguous:
		t.msgs[id] = chaos.Ambiguous
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
			problems = append(problems, fmt.Sprintf("thread %s %q exists although its create chaos.Failed cleanly (the caller was told it chaos.Failed)", id, t.Title))
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
	case tl.deleted == chaos.Acked && isLive:
		bad("thread %s %q is live although its delete was acknowledged", id, tl.title)
		return problems, nil
	case !isLive && tl.deleted == 0, !isLive && tl.deleted == chaos.Failed:
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
		case o == chaos.Acked && !has:
			bad("thread %s metadata lacks %q although that update was acknowledged (lost update)", id, k)
		case o == chaos.Failed && has:
			bad("thread %s metadata has %q although that update chaos.Failed cleanly", id, k)
		}
	}
	var msgs []handlers.Message
	for off := 0; ; off += 100 {
		page, err := svc.GetMessages(ctx, user, id, handlers.Page{Offset: off, Limit: 100})
		if errors.Is(err, handlers.ErrNotFound) && tl.deleted == chaos.Ambiguous {
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
		case o == chaos.Acked && n == 0:
			bad("thread %s lacks message %q although its send was acknowledged", id, cid)
		case o == chaos.Failed && n > 0:
			bad("thread %s holds message %q although its send chaos.Failed cleanly", id, cid)
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
