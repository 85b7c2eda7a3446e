package threadsuite

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/sessionsafe/sessionsafe/faults"
	"github.com/sessionsafe/sessionsafe/handlers"
	"github.com/sessionsafe/sessionsafe/internal/testkit"
	"github.com/sessionsafe/sessionsafe/leakcheck"
	"github.com/sessionsafe/sessionsafe/pgtest"
	"github.com/sessionsafe/sessionsafe/scenarios"
)

// The original plan's eleven failing tests, each as harness scenarios on
// sqlmock and on real Postgres: built from fault plans and checked by the
// matrix runner's invariants (the error surfaced, all-or-nothing state, the
// pool, the server, the goroutines, and on sqlmock the expectations generated
// from the golden trace, rollback included), by a pool check made while the
// request is still live, and on Postgres by reading pg_stat_activity and
// pg_locks for the case's application_name. Where the runner has no mechanism
// for the original's failure (a connection lost at commit, two concurrent
// requests), the case drives an instrumented pool itself with the same checks.
//
//	go test ./threadsuite -run 'TestOriginal/01-update-commit-connection-lost/postgres$'

// original is one of the eleven cases.
type original struct {
	name string
	// The runner case: the operation, the step kinds and the SQL (a
	// substring) the fault is armed at, and the fault.
	op    string
	steps []string
	sql   string
	fault string
	// wantErr, if set, is what the caller must get (errors.Is).
	wantErr error
	// poolCap limits the case's pool while the operation runs.
	poolCap int
	// opts gives the handlers options of the case (fresh per call).
	opts func() []handlers.Option
	// gen, if set, is reset right before the case runs.
	gen *countingGenerator
	// check runs after the runner case with what it returned.
	check func(t testing.TB, res scenarios.Result)
	// pg replaces the runner case on Postgres (a failure the runner has no
	// mechanism for); mock likewise on sqlmock.
	pg   func(t *testing.T)
	mock func(t *testing.T)
}

// countingGenerator counts its calls and answers a fixed title.
type countingGenerator struct{ calls atomic.Int64 }

func (g *countingGenerator) GenerateTitle(context.Context, string) (string, error) {
	g.calls.Add(1)
	return "Generated title", nil
}

func originals() []original {
	gen := &countingGenerator{}
	return []original{
		{name: "01-update-commit-connection-lost", op: OpUpdateThread, steps: []string{"commit"}, fault: "pgerr=08006",
			pg: testOriginalCommitConnectionLost},
		{name: "02-create-constraint-violation", op: OpCreateThread, steps: []string{"query"}, sql: "INSERT INTO threads", fault: "pgerr=23505",
			wantErr: handlers.ErrConflict},
		{name: "03-get-timeout", op: OpGetThread, steps: []string{"query"}, sql: "FROM threads", fault: "pgerr=57014",
			check: func(t testing.TB, res scenarios.Result) {
				if !handlers.IsRetryable(res.Err) {
					t.Errorf("handlers.IsRetryable(%v) = false; want true for a statement timeout", res.Err)
				}
			}},
		{name: "04-count-in-same-transaction", op: OpGetThread, steps: []string{"clean"}, poolCap: 1},
		{name: "05-delete-archive-fails", op: OpDeleteThread, steps: []string{"exec"}, sql: "archived_at = now()", fault: "error",
			wantErr: faults.ErrInjected},
		{name: "06-auto-rename-title-update-fails", op: OpAutoRename, steps: []string{"query", "exec"}, sql: "UPDATE threads SET title", fault: "error",
			wantErr: faults.ErrInjected, gen: gen,
			opts: func() []handlers.Option { return []handlers.Option{handlers.WithTitleGenerator(gen)} },
			check: func(t testing.TB, res scenarios.Result) {
				if n := gen.calls.Load(); n != 1 {
					t.Errorf("title generator: got %d calls; want 1 (the write fails after the title was generated)", n)
				}
			}},
		{name: "07-list-timeout", op: OpListThreads, steps: []string{"query"}, fault: "pgerr=57014"},
		{name: "08-commit-failure-discards-session", op: OpUpdateThread, steps: []string{"commit"}, fault: "badconn",
			pg: testOriginalBrokenSessionDiscarded},
		{name: "09-concurrent-updates-one-fails-at-commit",
			pg: testOriginalConcurrentUpdates, mock: testOriginalConcurrentUpdatesMock},
		{name: "10-failed-get-returns-connection", op: OpGetThread, steps: []string{"query"}, fault: "error",
			wantErr: faults.ErrInjected},
		{name: "11-failed-list-leaves-no-transaction", op: OpListThreads, steps: []string{"next"}, fault: "error",
			wantErr: faults.ErrInjected},
	}
}

// TestOriginal runs the eleven cases by name on both backends.
func TestOriginal(t *testing.T) {
	for _, o := range originals() {
		t.Run(o.name, func(t *testing.T) {
			t.Run("sqlmock", func(t *testing.T) {
				if o.mock != nil {
					o.mock(t)
					return
				}
				runOriginal(t.Context(), t, o, scenarios.Config{Backend: scenarios.Sqlmock, Golden: GoldenFS()})
			})
			t.Run("postgres", func(t *testing.T) {
				if o.pg != nil {
					o.pg(t)
					return
				}
				db := originalDB(t)
				runOriginal(t.Context(), t, o, scenarios.Config{Backend: scenarios.Postgres, DSN: db.DSN, DB: db.DB, Admin: db.Admin, AppName: db.AppName})
				leakcheck.VerifyServer(t, db.Admin, db.AppName, leakcheck.WithTimeout(time.Until(testkit.Deadline(t))))
			})
		})
	}
}

func originalDB(tb testing.TB) *pgtest.Database {
	tb.Helper()
	return pgtest.New(tb, pgtest.WithMigration("handlers", handlers.Migrate))
}

// runOriginal runs the original's runner case(s) on cfg's backend: every
// invariant must hold, the pool must be back while the request is live, and
// the caller must get wantErr.
func runOriginal(ctx context.Context, t testing.TB, o original, cfg scenarios.Config) {
	t.Helper()
	var opts []handlers.Option
	if o.opts != nil {
		opts = o.opts()
	}
	opts = append(opts, handlers.WithLogger(quiet))
	op, ok := Lookup(Catalog(opts...), o.op)
	if !ok {
		t.Fatalf("no operation %q in the catalog", o.op)
	}
	var live atomic.Pointer[string]
	op = killer{live: true, poolCap: o.poolCap}.wrap(op, &live)
	cfg.CheckTimeout = time.Until(testkit.Deadline(t)) // every check must hold: poll as long as the test may
	cfg.Faults = func(k faults.StepKind) []faults.Fault {
		for _, s := range o.steps {
			if s == k.String() && o.fault != "" {
				return mustFaults([]string{o.fault})
			}
		}
		return nil
	}
	cfg.Only = func(c scenarios.Case) bool {
		for _, s := range o.steps {
			if s == c.StepName() && strings.Contains(c.SQL, o.sql) {
				return true
			}
		}
		return false
	}
	cfg.Replay = func(scenarios.Case) string {
		return fmt.Sprintf("go test ./threadsuite -run 'TestOriginal/%s/%s$'", o.name, cfg.Backend)
	}
	r, err := scenarios.NewRunner(context.WithoutCancel(ctx), cfg, op)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = r.Close() })
	cases := r.Cases()
	if len(cases) == 0 {
		t.Fatalf("no step of %s matches steps %v with SQL containing %q; the clean trace:\n%s", o.op, o.steps, o.sql, r.Trace())
	}
	c := cases[0] // the first matching step: the original names one failure
	if o.gen != nil {
		o.gen.calls.Store(0)
	}
	res := r.RunCase(ctx, c)
	t.Logf("%s: %s -> %v", cfg.Backend, c.Name(), res.Err)
	for _, f := range res.Findings {
		t.Error(f.Error())
	}
	if l := live.Load(); l != nil {
		t.Errorf("%s: %s", c.Name(), *l)
	}
	if o.fault != "" && !res.Fired {
		t.Errorf("%s: the fault did not fire", c.Name())
	}
	if o.wantErr != nil && !errors.Is(res.Err, o.wantErr) {
		t.Errorf("%s: got error %v; want %v", c.Name(), res.Err, o.wantErr)
	}
	if o.check != nil {
		o.check(t, res)
	}
}

// pgRig is an instrumented pool of its own on a fresh database, with an
// application_name of its own, for the originals the runner has no
// mechanism for.
type pgRig struct {
	db      *pgtest.Database
	app     string
	inj     *faults.Injector
	tracker *leakcheck.Tracker
	pool    *sql.DB
	svc     *handlers.Service
}

// newRig opens a pool of size connections on db under application_name
// db.AppName+"-"+tag, through a leakcheck.Tracker and a faults.Injector whose
// server faults act on that application_name.
func newRig(t *testing.T, db *pgtest.Database, tag string, size int) *pgRig {
	t.Helper()
	r := &pgRig{db: db, app: derivedAppName(db.AppName, tag), tracker: leakcheck.NewTracker()}
	dsn, err := withAppName(db.DSN, r.app)
	if err != nil {
		t.Fatal(err)
	}
	r.inj = faults.NewInjector(faults.WithServer(faults.NewServer(db.Admin), r.app))
	if r.pool, err = openPool(dsn, size, r.tracker.WrapConnector, r.inj.WrapConnector); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = r.pool.Close() })
	r.svc = handlers.New(r.pool, handlers.WithLogger(quiet))
	return r
}

// verify disarms the injector, then checks the pool (with attribution), the
// server (pg_stat_activity, pg_locks) and the goroutines, polling to the
// test's deadline for them to settle.
func (r *pgRig) verify(t *testing.T, baseline goleak.Option) {
	t.Helper()
	r.inj.Reset()
	leakcheck.VerifyNone(t, leakcheck.WithDB(r.pool), leakcheck.WithTracker(r.tracker),
		leakcheck.WithServer(r.db.Admin, r.app), leakcheck.WithGoroutines(baseline), leakcheck.WithTimeout(time.Until(testkit.Deadline(t))))
}

// updateKilledAtCommit updates the thread's title to "never stored" (and its
// metadata with md) while the session's backend is terminated on the server
// at COMMIT (plan "match=commit#1:terminate"), and returns the update's error.
func (r *pgRig) updateKilledAtCommit(t *testing.T, user, id string, md map[string]any) error {
	t.Helper()
	r.inj.Arm(faults.MustParsePlan("match=commit#1:terminate"))
	title := "never stored"
	_, err := r.svc.UpdateThread(opContext(t), user, id, handlers.UpdateThreadInput{Title: &title, Metadata: md})
	return err
}

// opContext is the context of an operation an original runs by hand: t's, ending at
// testkit.Deadline(t), so that an operation that waits for ever (for a connection a bug
// never gives back, on a pool of one) fails the test with its deadline instead of hanging
// the package until go test's timeout.
func opContext(t *testing.T) context.Context {
	ctx, cancel := context.WithDeadline(t.Context(), testkit.Deadline(t))
	t.Cleanup(cancel)
	return ctx
}

// seededOriginal starts an original the runner has no mechanism for: a fresh
// database, the original's user ("original-"+num) and a thread of that user
// with one message.
func seededOriginal(t *testing.T, num string) (db *pgtest.Database, user string, th handlers.Thread) {
	t.Helper()
	db = originalDB(t)
	user = "original-" + num
	return db, user, seedThread(t, db, user)
}

// seedThread creates a thread of user with one message, on the plain pool.
func seedThread(t *testing.T, db *pgtest.Database, user string) handlers.Thread {
	t.Helper()
	svc := handlers.New(db.DB, handlers.WithLogger(quiet))
	th, err := svc.CreateThread(opContext(t), user, handlers.CreateThreadInput{Title: "seed", Metadata: map[string]any{"k": "v"}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := svc.SendMessage(opContext(t), user, th.ID, handlers.SendMessageInput{Content: "first"}); err != nil {
		t.Fatal(err)
	}
	return th
}

func readThread(t *testing.T, db *pgtest.Database, user, id string) handlers.Thread {
	t.Helper()
	th, err := handlers.New(db.DB, handlers.WithLogger(quiet)).GetThread(opContext(t), user, id)
	if err != nil {
		t.Fatalf("read the thread back: %v", err)
	}
	return th
}

// testOriginalCommitConnectionLost: the session's backend is terminated on
// the server at COMMIT (a real lost connection, plan
// "match=commit#1:terminate"): the update fails, the server rolled it back,
// nothing is left open.
func testOriginalCommitConnectionLost(t *testing.T) {
	db, user, th := seededOriginal(t, "01")
	rig := newRig(t, db, "01", 2)
	baseline := goleak.IgnoreCurrent()
	err := rig.updateKilledAtCommit(t, user, th.ID, map[string]any{"lost": true})
	if len(rig.inj.Fired()) != 1 {
		t.Fatalf("the terminate fault did not fire; trace:\n%s", rig.inj.Trace())
	}
	if err == nil {
		t.Fatalf("update whose connection was lost at commit: got success; want the error to surface\ntrace:\n%s", rig.inj.Trace())
	}
	t.Logf("update with its backend terminated at commit: %v", err)
	got := readThread(t, db, user, th.ID)
	if got.Title != "seed" || got.Metadata["lost"] != nil {
		t.Errorf("thread after the lost commit: title %q metadata %v; want the seed state (rolled back)", got.Title, got.Metadata)
	}
	rig.verify(t, baseline)
}

// testOriginalBrokenSessionDiscarded: a commit that kills the session (its
// backend terminated at COMMIT) leaves a connection that must never serve
// again: on a pool of one connection, the next operation runs on a new one,
// the broken one was closed, and nothing is left open.
func testOriginalBrokenSessionDiscarded(t *testing.T) {
	db, user, th := seededOriginal(t, "08")
	rig := newRig(t, db, "08", 1)
	baseline := goleak.IgnoreCurrent()
	if err := rig.updateKilledAtCommit(t, user, th.ID, nil); err == nil {
		t.Fatal("update with its session killed at commit: got success; want an error")
	}
	failed := rig.inj.Trace()
	var brokenConn uint64
	for _, s := range failed {
		if s.Kind == faults.StepCommit {
			brokenConn = s.Conn
		}
	}
	rig.inj.Reset()
	got, err := rig.svc.GetThread(opContext(t), user, th.ID)
	if err != nil {
		t.Fatalf("the next operation on the pool of one: %v; want success on a fresh session\ntrace:\n%s", err, rig.inj.Trace())
	}
	if got.Title != "seed" {
		t.Errorf("title: got %q; want %q (rolled back)", got.Title, "seed")
	}
	next := rig.inj.Trace()
	for _, s := range next {
		if s.Conn == brokenConn && s.Kind != faults.StepClose && s.Kind != faults.StepReset && s.Kind != faults.StepIsValid {
			t.Errorf("the broken connection %d was used again (step %s); want it discarded\nfailed run:\n%s\nnext run:\n%s", brokenConn, s, failed, next)
			break
		}
	}
	closed := false
	for _, s := range append(failed, next...) {
		closed = closed || (s.Conn == brokenConn && s.Kind == faults.StepClose)
	}
	if !closed {
		t.Errorf("the broken connection %d was never closed\nfailed run:\n%s\nnext run:\n%s", brokenConn, failed, next)
	}
	rig.verify(t, baseline)
}

// testOriginalConcurrentUpdates: two updates of one thread at once, each on
// its own pool and session: A takes the row, pauses, and loses its connection
// at COMMIT (its backend terminated); B waits for A's row lock meanwhile, then
// commits. A fails and is rolled back; B succeeds; the thread holds B's change
// only; nothing is left open on either.
func testOriginalConcurrentUpdates(t *testing.T) {
	db, user, th := seededOriginal(t, "09")
	a := newRig(t, db, "09a", 1)
	b := newRig(t, db, "09b", 1)
	baseline := goleak.IgnoreCurrent()
	a.inj.Arm(faults.MustParsePlan("match=rows-close#1:latency=1s,match=commit#1:terminate"))
	b.inj.Reset()
	ta, tb := "title A", "title B"
	var errA, errB error
	var wg sync.WaitGroup
	wg.Go(func() {
		_, errA = a.svc.UpdateThread(opContext(t), user, th.ID, handlers.UpdateThreadInput{Title: &ta, Metadata: map[string]any{"a": true}})
	})
	// B starts once A holds the row (A's UPDATE ran), and must wait for it.
	testkit.EventuallyNil(t, func() error {
		if !hasStep(a.inj.Trace(), faults.StepRowsClose) {
			return fmt.Errorf("trace A:\n%s", a.inj.Trace())
		}
		return nil
	}, "A to reach its UPDATE")
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	wg.Go(func() {
		_, errB = b.svc.UpdateThread(opContext(t), user, th.ID, handlers.UpdateThreadInput{Title: &tb, Metadata: map[string]any{"b": true}})
	})
	if err := faults.NewServer(db.Admin).WaitBlocked(ctx, b.app); err != nil {
		t.Logf("B was not seen waiting for A's row lock (%v): the two may not have overlapped", err)
	} else {
		t.Log("B waits for A's row lock while A is about to commit")
	}
	wg.Wait()
	if errA == nil {
		t.Errorf("A (connection lost at commit): got success; want an error\ntrace A:\n%s", a.inj.Trace())
	}
	if errB != nil {
		t.Errorf("B: got %v; want success (A's failure must not disturb it)", errB)
	}
	got := readThread(t, db, user, th.ID)
	if got.Title != tb || got.Metadata["b"] != true || got.Metadata["a"] != nil {
		t.Errorf("thread: title %q metadata %v; want B's change only (title %q, key b, no key a)", got.Title, got.Metadata, tb)
	}
	a.verify(t, baseline)
	b.verify(t, baseline)
}

func hasStep(tr faults.Trace, k faults.StepKind) bool {
	for _, s := range tr {
		if s.Kind == k {
			return true
		}
	}
	return false
}

// testOriginalConcurrentUpdatesMock: on sqlmock, the two updates run at once
// as two runner cases (each its own mock and pool): A's commit fails with a
// bad connection and must be rolled back, B's must commit; each case's
// invariants hold, and no goroutine outlives either.
func testOriginalConcurrentUpdatesMock(t *testing.T) {
	baseline := goleak.IgnoreCurrent()
	newRunner := func(fault string) (*scenarios.Runner, scenarios.Case) {
		op, _ := Lookup(Catalog(handlers.WithLogger(quiet)), OpUpdateThread)
		cfg := scenarios.Config{Backend: scenarios.Sqlmock, Golden: GoldenFS(), NoGoroutineCheck: true,
			Faults: func(k faults.StepKind) []faults.Fault {
				if k == faults.StepCommit && fault != "" {
					return mustFaults([]string{fault})
				}
				return nil
			},
			Only: func(c scenarios.Case) bool {
				return (fault == "" && c.Clean()) || (fault != "" && c.StepKind == faults.StepCommit)
			},
		}
		r, err := scenarios.NewRunner(t.Context(), cfg, op)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = r.Close() })
		cs := r.Cases()
		if len(cs) == 0 {
			t.Fatalf("no case for fault %q", fault)
		}
		return r, cs[0]
	}
	ra, ca := newRunner("badconn")
	rb, cb := newRunner("")
	var resA, resB scenarios.Result
	testkit.FanOut(2, func(i int) error {
		if i == 0 {
			resA = ra.RunCase(t.Context(), ca)
		} else {
			resB = rb.RunCase(t.Context(), cb)
		}
		return nil
	})
	for _, f := range append(resA.Findings, resB.Findings...) {
		t.Error(f.Error())
	}
	if resA.Err == nil || !errors.Is(resA.Err, driver.ErrBadConn) {
		t.Errorf("A (%s): got %v; want the bad connection to surface", ca.Name(), resA.Err)
	}
	if resB.Err != nil {
		t.Errorf("B (%s): got %v; want success", cb.Name(), resB.Err)
	}
	leakcheck.VerifyGoroutines(t, baseline)
}
