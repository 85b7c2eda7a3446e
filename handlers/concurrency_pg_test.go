package handlers

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sessionsafe/sessionsafe/internal/drvwrap"
)

const concurrency = 50

// fanOut runs fn(i) for i in [0, n) concurrently and returns their errors.
func fanOut(n int, fn func(i int) error) []error {
	errs := make([]error, n)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			errs[i] = fn(i)
		}()
	}
	close(start)
	wg.Wait()
	return errs
}

// concurrentPatchesCase: 50 concurrent metadata patches adding distinct keys
// lose none. So that a read-modify-write merge loses keys every time (not
// only when the scheduler is unlucky), a barrier holds any metadata write
// until two have arrived: both read the metadata before either wrote.
func concurrentPatchesCase(ctx context.Context, tb testing.TB) error {
	tb.Helper()
	f := newPG(tb)
	th := f.seedThread(tb, pgUser, 0)
	var arrived atomic.Int32
	bothRead := make(chan struct{})
	f.setHook(func(ctx context.Context, c *drvwrap.Call) error {
		if c.Op != drvwrap.OpQuery || c.SQL != sqlWriteMetadata {
			return nil
		}
		if arrived.Add(1) == 2 {
			close(bothRead)
		}
		select {
		case <-bothRead:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	})
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	errs := fanOut(concurrency, func(i int) error {
		_, err := f.svc.UpdateThread(ctx, pgUser, th.ID, UpdateThreadInput{Metadata: map[string]any{fmt.Sprintf("k%02d", i): i}})
		return err
	})
	f.setHook(nil)
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("concurrent patches: %w", err)
	}
	got, err := f.svc.GetThread(context.Background(), pgUser, th.ID)
	if err != nil {
		return err
	}
	var lost []string
	for i := range concurrency {
		if k := fmt.Sprintf("k%02d", i); got.Metadata[k] == nil {
			lost = append(lost, k)
		}
	}
	if len(lost) > 0 {
		return fmt.Errorf("metadata: %d of %d concurrent patches lost (keys %v); want none", len(lost), concurrency, lost)
	}
	if got.Metadata["seed"] != true || got.Metadata["user_id"] != pgUser {
		return fmt.Errorf("metadata %v: the keys set at creation changed", got.Metadata)
	}
	return f.serverClean(2 * time.Second)
}

func TestPostgresConcurrentPatchesLoseNoKey(t *testing.T) {
	requireClean(t, concurrentPatchesCase(context.Background(), t))
}

func TestPostgresConcurrentSendsGapFree(t *testing.T) {
	f := newPG(t)
	th := f.seedThread(t, pgUser, 0)
	seqs := make([]int64, concurrency)
	errs := fanOut(concurrency, func(i int) error {
		m, err := f.svc.SendMessage(context.Background(), pgUser, th.ID, SendMessageInput{Content: fmt.Sprintf("m%d", i)})
		seqs[i] = m.Seq
		return err
	})
	if err := errors.Join(errs...); err != nil {
		t.Fatalf("concurrent sends: %v", err)
	}
	slices.Sort(seqs)
	for i, s := range seqs {
		if s != int64(i+1) {
			t.Fatalf("seqs %v: got %d at position %d; want 1..%d with no gap or duplicate", seqs, s, i, concurrency)
		}
	}
	msgs, err := f.svc.GetMessages(context.Background(), pgUser, th.ID, Page{Limit: 100})
	if err != nil {
		t.Fatal(err)
	}
	for i, m := range msgs {
		if m.Seq != int64(i+1) {
			t.Fatalf("message %d has seq %d; want messages in seq order 1..%d", i, m.Seq, concurrency)
		}
	}
	got, err := f.svc.GetThread(context.Background(), pgUser, th.ID)
	if err != nil || got.MessageCount != concurrency {
		t.Fatalf("message count: got %d (err %v); want %d", got.MessageCount, err, concurrency)
	}
	f.mustClean(t)
}

// retriedSendCase: a send retried with the same client message id (again
// after success, and concurrently) stores one message and returns it.
func retriedSendCase(ctx context.Context, tb testing.TB) error {
	tb.Helper()
	f := newPG(tb)
	th := f.seedThread(tb, pgUser, 0)
	in := SendMessageInput{Content: "exactly once", ClientMessageID: "client-1"}
	first, err := f.svc.SendMessage(ctx, pgUser, th.ID, in)
	if err != nil {
		return fmt.Errorf("first send: %w", err)
	}
	ids := make([]string, 10)
	errs := fanOut(len(ids), func(i int) error {
		m, err := f.svc.SendMessage(ctx, pgUser, th.ID, in)
		ids[i] = m.ID
		return err
	})
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("retried sends: %w", err)
	}
	var problems []error
	for _, id := range ids {
		if id != first.ID {
			problems = append(problems, fmt.Errorf("retried send returned message %s; want the first one, %s", id, first.ID))
			break
		}
	}
	msgs, err := f.svc.GetMessages(context.Background(), pgUser, th.ID, Page{Limit: 100})
	if err != nil {
		return err
	}
	if len(msgs) != 1 {
		problems = append(problems, fmt.Errorf("messages stored: got %d; want 1 (a retried send created a duplicate)", len(msgs)))
	}
	problems = append(problems, f.serverClean(2*time.Second))
	return errors.Join(problems...)
}

func TestPostgresRetriedSendNoDuplicate(t *testing.T) {
	requireClean(t, retriedSendCase(context.Background(), t))
}

// TestPostgresDeleteRacingSends: while senders append to a thread, it is
// deleted. Every send acknowledged as stored is stored; no send that failed
// left a message; once the delete has returned, no send succeeds.
func TestPostgresDeleteRacingSends(t *testing.T) {
	f := newPG(t)
	th := f.seedThread(t, pgUser, 0)
	const senders = 8
	var (
		mu       sync.Mutex
		acked    = map[string]bool{}
		deleted  atomic.Bool
		lateAcks atomic.Int32
		started  = make(chan struct{}, senders)
	)
	var wg sync.WaitGroup
	for s := range senders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				afterDelete := deleted.Load()
				m, err := f.svc.SendMessage(context.Background(), pgUser, th.ID, SendMessageInput{Content: fmt.Sprintf("s%d-%d", s, i)})
				if i == 0 {
					started <- struct{}{}
				}
				if errors.Is(err, ErrNotFound) {
					return
				}
				if err != nil {
					t.Errorf("send: %v", err)
					return
				}
				if afterDelete {
					lateAcks.Add(1)
				}
				mu.Lock()
				acked[m.ID] = true
				mu.Unlock()
			}
		}()
	}
	for range senders {
		<-started // every sender is sending
	}
	if err := f.svc.DeleteThread(context.Background(), pgUser, th.ID); err != nil {
		t.Fatalf("delete: %v", err)
	}
	deleted.Store(true)
	wg.Wait()
	if n := lateAcks.Load(); n > 0 {
		t.Errorf("%d send(s) started after the delete returned were acknowledged; want 0", n)
	}
	rows, err := f.pg.DB.Query(`SELECT id::text FROM messages WHERE thread_id = $1`, th.ID)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	stored := map[string]bool{}
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			t.Fatal(err)
		}
		stored[id] = true
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	for id := range acked {
		if !stored[id] {
			t.Errorf("message %s was acknowledged but is not stored", id)
		}
	}
	for id := range stored {
		if !acked[id] {
			t.Errorf("message %s is stored but its send was refused", id)
		}
	}
	t.Logf("%d messages acknowledged before the archive point", len(acked))
	f.mustClean(t)
}
