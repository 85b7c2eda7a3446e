package handlers

import (
	"context"
	"database/sql/driver"
	"errors"
	"testing"
	"time"

	"github.com/sessionsafe/sessionsafe/internal/drvwrap"
)

// The original plan's eleven cases on a real Postgres: after each, the
// server shows no backend of the test idle in transaction (aborted or not)
// and no lock held, and the pool has no connection in use. The state is
// read back to show the failed operation changed nothing.

const pgUser = "alice"

func title(tb testing.TB, f *pgFixture, id string) string {
	tb.Helper()
	th, err := f.svc.GetThread(context.Background(), pgUser, id)
	if err != nil {
		tb.Fatalf("read back thread: %v", err)
	}
	return th.Title
}

func TestOriginal01_UpdateCommitConnectionLost_Postgres(t *testing.T) {
	f := newPG(t)
	th := f.seedThread(t, pgUser, 0)
	f.failOnce(drvwrap.OpCommit, "", func(ctx context.Context) error { return f.terminateSession(ctx) })
	newTitle := "never stored"
	_, err := f.svc.UpdateThread(context.Background(), pgUser, th.ID, UpdateThreadInput{Title: &newTitle})
	if err == nil {
		t.Fatal("update with its session killed at commit: got success; want the error to surface")
	}
	f.mustClean(t)
	if got := title(t, f, th.ID); got != "seed" {
		t.Fatalf("title after the lost commit: got %q; want %q (rolled back)", got, "seed")
	}
}

func TestOriginal02_CreateConstraintViolationRollsBack_Postgres(t *testing.T) {
	f := newPG(t)
	f.failOnce(drvwrap.OpQuery, sqlInsertThread, func(context.Context) error { return pgErr("23505") })
	_, err := f.svc.CreateThread(context.Background(), pgUser, CreateThreadInput{Title: "x"})
	if !errors.Is(err, ErrConflict) {
		t.Fatalf("got error %v; want ErrConflict", err)
	}
	f.mustClean(t)
	ts, err := f.svc.ListThreads(context.Background(), pgUser, Page{Limit: 10})
	if err != nil || len(ts) != 0 {
		t.Fatalf("threads after the failed create: got %d (err %v); want 0", len(ts), err)
	}
}

func TestOriginal03_GetTimeoutCleansUpSession_Postgres(t *testing.T) {
	f := newPG(t)
	th, ctx := f.hangingThread(t, 1, sqlGetThread)
	f.requireTimedOutClean(t, errOnly(f.svc.GetThread(ctx, pgUser, th.ID)))
}

func TestOriginal04_CountInSameTransaction_Postgres(t *testing.T) {
	f := newPG(t)
	th := f.seedThread(t, pgUser, 3)
	f.db.SetMaxOpenConns(1)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	got, err := f.svc.GetThread(ctx, pgUser, th.ID)
	if err != nil {
		t.Fatalf("get thread on a pool of one connection: %v (a second connection was taken while the transaction held the only one)", err)
	}
	if got.MessageCount != 3 {
		t.Fatalf("message count: got %d; want 3", got.MessageCount)
	}
	f.mustClean(t)
}

func TestOriginal05_DeleteArchiveFailsRollsBack_Postgres(t *testing.T) {
	f := newPG(t)
	th := f.seedThread(t, pgUser, 0)
	f.failOnce(drvwrap.OpExec, sqlArchiveThread, func(context.Context) error { return errInjected })
	if err := f.svc.DeleteThread(context.Background(), pgUser, th.ID); !errors.Is(err, errInjected) {
		t.Fatalf("got error %v; want the injected failure", err)
	}
	f.mustClean(t)
	if _, err := f.svc.GetThread(context.Background(), pgUser, th.ID); err != nil {
		t.Fatalf("thread after the failed delete: %v; want it live", err)
	}
}

func TestOriginal06_AutoRenameUpdateFailsRollsBack_Postgres(t *testing.T) {
	gen := &countingGenerator{response: "generated title"}
	f := newPG(t, WithTitleGenerator(gen))
	th := f.seedThread(t, pgUser, 1)
	f.failOnce(drvwrap.OpQuery, sqlRenameThread, func(context.Context) error { return errInjected })
	if _, err := f.svc.AutoRename(context.Background(), pgUser, th.ID); !errors.Is(err, errInjected) {
		t.Fatalf("got error %v; want the injected failure", err)
	}
	if gen.calls != 1 {
		t.Fatalf("title generator: got %d calls; want 1 (the failure is after generation)", gen.calls)
	}
	f.mustClean(t)
	if got := title(t, f, th.ID); got != "seed" {
		t.Fatalf("title: got %q; want %q (rolled back)", got, "seed")
	}
}

func TestOriginal07_ListTimeoutRollsBack_Postgres(t *testing.T) {
	f := newPG(t)
	_, ctx := f.hangingThread(t, 0, sqlListThreads)
	f.requireTimedOutClean(t, errOnly(f.svc.ListThreads(ctx, pgUser, Page{Limit: 10})))
}

func TestOriginal08_CommitFailureSessionDiscarded_Postgres(t *testing.T) {
	f := newPG(t)
	th := f.seedThread(t, pgUser, 0)
	f.db.SetMaxOpenConns(1)
	f.failOnce(drvwrap.OpCommit, "", func(ctx context.Context) error { return f.terminateSession(ctx) })
	newTitle := "never stored"
	if _, err := f.svc.UpdateThread(context.Background(), pgUser, th.ID, UpdateThreadInput{Title: &newTitle}); err == nil {
		t.Fatal("got success; want the commit failure to surface")
	}
	// The only connection was broken: had it gone back to the pool, these
	// would fail on it.
	for i := range 3 {
		if _, err := f.svc.GetThread(context.Background(), pgUser, th.ID); err != nil {
			t.Fatalf("operation %d after the broken commit: %v (the broken session was reused)", i+1, err)
		}
	}
	f.mustClean(t)
	if got := title(t, f, th.ID); got != "seed" {
		t.Fatalf("title: got %q; want %q", got, "seed")
	}
}

func TestOriginal09_ConcurrentUpdatesOneCommitFails_Postgres(t *testing.T) {
	f := newPG(t)
	th := f.seedThread(t, pgUser, 0)
	f.failOnce(drvwrap.OpCommit, "", func(context.Context) error { return driver.ErrBadConn })
	type result struct {
		key string
		err error
	}
	results := make(chan result, 2)
	for _, key := range []string{"a", "b"} {
		go func() {
			_, err := f.svc.UpdateThread(context.Background(), pgUser, th.ID, UpdateThreadInput{Metadata: map[string]any{key: true}})
			results <- result{key, err}
		}()
	}
	var ok, failed []string
	for range 2 {
		r := <-results
		if r.err != nil {
			failed = append(failed, r.key)
		} else {
			ok = append(ok, r.key)
		}
	}
	if len(ok) != 1 || len(failed) != 1 {
		t.Fatalf("got succeeded %v, failed %v; want one of each", ok, failed)
	}
	f.mustClean(t)
	got, err := f.svc.GetThread(context.Background(), pgUser, th.ID)
	if err != nil {
		t.Fatal(err)
	}
	if _, has := got.Metadata[ok[0]]; !has {
		t.Errorf("metadata %v: the committed update's key %q is missing", got.Metadata, ok[0])
	}
	if _, has := got.Metadata[failed[0]]; has {
		t.Errorf("metadata %v: the failed update's key %q was stored", got.Metadata, failed[0])
	}
}

func TestOriginal10_GetFailureReturnsConnection_Postgres(t *testing.T) {
	f := newPG(t)
	th := f.seedThread(t, pgUser, 1)
	f.failOnce(drvwrap.OpQuery, sqlCountMessages, func(context.Context) error { return errInjected })
	if _, err := f.svc.GetThread(context.Background(), pgUser, th.ID); !errors.Is(err, errInjected) {
		t.Fatalf("got error %v; want the injected failure", err)
	}
	f.mustClean(t)
	if s := f.db.Stats(); s.Idle != s.OpenConnections {
		t.Fatalf("pool: %d idle of %d open; want every connection idle", s.Idle, s.OpenConnections)
	}
}

func TestOriginal11_ListLeavesNoOpenTransaction_Postgres(t *testing.T) {
	f := newPG(t)
	f.seedThread(t, pgUser, 0)
	f.failOnce(drvwrap.OpQuery, sqlListThreads, func(context.Context) error { return pgErr("57014") })
	if _, err := f.svc.ListThreads(context.Background(), pgUser, Page{Limit: 10}); err == nil {
		t.Fatal("got success; want the failure to surface")
	}
	f.mustClean(t)
}

// TestPostgresRetriesSerializationFailure: a unit failing with 40001 or
// 40P01 is retried whole and succeeds, leaving one effect and nothing open.
func TestPostgresRetriesSerializationFailure(t *testing.T) {
	for _, code := range []string{"40001", "40P01"} {
		t.Run(code, func(t *testing.T) {
			f := newPG(t)
			th := f.seedThread(t, pgUser, 0)
			f.failOnce(drvwrap.OpQuery, sqlInsertMessage, func(context.Context) error { return pgErr(code) })
			m, err := f.svc.SendMessage(context.Background(), pgUser, th.ID, SendMessageInput{Content: "retried"})
			if err != nil || m.Seq != 1 {
				t.Fatalf("got %+v, %v; want the retried send to succeed with seq 1", m, err)
			}
			f.mustClean(t)
			if got, err := f.svc.GetThread(context.Background(), pgUser, th.ID); err != nil || got.MessageCount != 1 {
				t.Fatalf("message count: got %d, %v; want 1 (the failed attempt was rolled back)", got.MessageCount, err)
			}
		})
	}
}
