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

// pairBarrier returns a hook that holds every call of op on sql until two
// have arrived: two writers have both read before either writes, so that a
// lost update happens every time, not only when the scheduler is unlucky.
func pairBarrier(op drvwrap.Op, sql string) func(context.Context, *drvwrap.Call) error {
	var arrived atomic.Int32
	bothRead := make(chan struct{})
	return func(ctx context.Context, c *drvwrap.Call) error {
		if c.Op != op || c.SQL != sql {
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
	}
}

// concurrentPatchesCase: 50 concurrent metadata patches adding distinct keys
// lose none. So that a read-modify-write merge loses keys every time (not
// only when the scheduler is unlucky), a barrier holds any metadata write
// until two have arrived: both read the metadata before either wrote.
func concurrentPatchesCase(ctx context.Context, tb testing.TB) error {
	tb.Helper()
	f := newPG(tb)
	th := f.seedThread(tb, pgUser, 0)
	f.setHook(pairBarrier(drvwrap.OpQuery, sqlWriteMetadata))
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

// concurrentSendsCase: 50 concurrent sends to one thread get seq 1..50,
// no gap, no duplicate, stored in order. A barrier holds a counter write
// (made only by the planted bugSendWithoutLock) until two have arrived, so
// that bug collides every time.
func concurrentSendsCase(bugs testBug) check {
	return func(ctx context.Context, tb testing.TB) error {
		tb.Helper()
		f := newPG(tb, withTestBugs(bugs))
		th := f.seedThread(tb, pgUser, 0)
		f.setHook(pairBarrier(drvwrap.OpExec, sqlWriteCounter))
		ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		seqs := make([]int64, concurrency)
		errs := fanOut(concurrency, func(i int) error {
			m, err := f.svc.SendMessage(ctx, pgUser, th.ID, SendMessageInput{Content: fmt.Sprintf("m%d", i)})
			seqs[i] = m.Seq
			return err
		})
		f.setHook(nil)
		if err := errors.Join(errs...); err != nil {
			return fmt.Errorf("concurrent sends: %w", err)
		}
		slices.Sort(seqs)
		for i, s := range seqs {
			if s != int64(i+1) {
				return fmt.Errorf("seqs %v: got %d at position %d; want 1..%d with no gap or duplicate", seqs, s, i, concurrency)
			}
		}
		msgs, err := f.svc.GetMessages(context.Background(), pgUser, th.ID, Page{Limit: 100})
		if err != nil {
			return err
		}
		for i, m := range msgs {
			if m.Seq != int64(i+1) {
				return fmt.Errorf("message %d has seq %d; want messages in seq order 1..%d", i, m.Seq, concurrency)
			}
		}
		got, err := f.svc.GetThread(context.Background(), pgUser, th.ID)
		if err != nil || got.MessageCount != concurrency {
			return fmt.Errorf("message count: got %d (err %v); want %d", got.MessageCount, err, concurrency)
		}
		return f.serverClean(2 * time.Second)
	}
}

func TestPostgresConcurrentSendsGapFree(t *testing.T) {
	requireClean(t, concurrentSendsCase(0)(context.Background(), t))
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

// deleteRaceCase: while senders append to a thread, it is deleted. Every
// send acknowledged is stored; no refused send left a message; once the
// delete has returned no send succeeds, and no message appears after the
// archive point (the messages stored when the delete returned are all there
// will ever be). A hook holds one counter write (made only by the planted
// bugSendWithoutLock) until the delete has returned, so that bug lands a
// message after the archive point every time.
func deleteRaceCase(bugs testBug, senders int) check {
	return func(ctx context.Context, tb testing.TB) error {
		tb.Helper()
		f := newPG(tb, withTestBugs(bugs))
		th := f.seedThread(tb, pgUser, 0)
		deleted := make(chan struct{})
		var held atomic.Bool
		holding := make(chan struct{})
		f.setHook(func(ctx context.Context, c *drvwrap.Call) error {
			if c.Op != drvwrap.OpExec || c.SQL != sqlWriteCounter || !held.CompareAndSwap(false, true) {
				return nil
			}
			close(holding)
			select {
			case <-deleted:
				return nil
			case <-ctx.Done():
				return ctx.Err()
			}
		})
		defer f.setHook(nil)
		ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()

		var (
			mu        sync.Mutex
			acked     = map[string]bool{}
			problems  []error
			lateAcks  atomic.Int32
			firstAck  = make(chan struct{})
			ackedOnce sync.Once
			wg        sync.WaitGroup
		)
		isDeleted := func() bool {
			select {
			case <-deleted:
				return true
			default:
				return false
			}
		}
		for s := range senders {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 0; ; i++ {
					afterDelete := isDeleted()
					m, err := f.svc.SendMessage(ctx, pgUser, th.ID, SendMessageInput{Content: fmt.Sprintf("s%d-%d", s, i)})
					if errors.Is(err, ErrNotFound) {
						return
					}
					mu.Lock()
					if err != nil {
						problems = append(problems, fmt.Errorf("send: %w", err))
						mu.Unlock()
						return
					}
					acked[m.ID] = true
					mu.Unlock()
					if afterDelete {
						lateAcks.Add(1)
					}
					ackedOnce.Do(func() { close(firstAck) })
				}
			}()
		}
		select { // let sends land before the delete
		case <-firstAck:
		case <-holding:
		case <-time.After(10 * time.Second):
		}
		if err := f.svc.DeleteThread(ctx, pgUser, th.ID); err != nil {
			cancel()
			wg.Wait()
			return fmt.Errorf("delete: %w", err)
		}
		atArchive, err := storedMessages(ctx, f, th.ID)
		close(deleted)
		wg.Wait()
		if err != nil {
			return err
		}
		final, err := storedMessages(ctx, f, th.ID)
		if err != nil {
			return err
		}
		if n := lateAcks.Load(); n > 0 {
			problems = append(problems, fmt.Errorf("%d send(s) started after the delete returned were acknowledged; want 0", n))
		}
		for id := range final {
			if !atArchive[id] {
				problems = append(problems, fmt.Errorf("message %s was stored after the archive point (acknowledged: %v)", id, acked[id]))
			}
			if !acked[id] {
				problems = append(problems, fmt.Errorf("message %s is stored but its send was refused", id))
			}
		}
		for id := range acked {
			if !final[id] {
				problems = append(problems, fmt.Errorf("message %s was acknowledged but is not stored", id))
			}
		}
		if len(acked) == 0 && bugs == 0 {
			problems = append(problems, errors.New("no send was acknowledged before the delete; the race was not exercised"))
		}
		tb.Logf("%d messages acknowledged before the archive point", len(acked))
		return errors.Join(append(problems, f.serverClean(2*time.Second))...)
	}
}

// storedMessages returns the ids of the thread's stored messages, read
// directly (archived threads are invisible to the service).
func storedMessages(ctx context.Context, f *pgFixture, threadID string) (map[string]bool, error) {
	rows, err := f.pg.DB.QueryContext(ctx, `SELECT id::text FROM messages WHERE thread_id = $1`, threadID)
	if err != nil {
		return nil, fmt.Errorf("read messages: %w", err)
	}
	defer rows.Close()
	ids := map[string]bool{}
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return nil, fmt.Errorf("read messages: %w", err)
		}
		ids[id] = true
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read messages: %w", err)
	}
	return ids, nil
}

func TestPostgresDeleteRacingSends(t *testing.T) {
	requireClean(t, deleteRaceCase(0, 8)(context.Background(), t))
}
