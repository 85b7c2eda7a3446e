package handlers

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"testing"

	"github.com/sessionsafe/sessionsafe/internal/drvwrap"
)

// TestPostgresOperations runs every operation's success path on a real
// server and reads back what it did.
func TestPostgresOperations(t *testing.T) {
	f := newPG(t)
	ctx := context.Background()

	th, err := f.svc.CreateThread(ctx, pgUser, CreateThreadInput{Title: "trip", Metadata: map[string]any{"user_id": "mallory", "topic": "travel"}})
	if err != nil {
		t.Fatalf("CreateThread: %v", err)
	}
	if err := checkThreadID(th.ID); err != nil || th.UserID != pgUser || th.Metadata["user_id"] != pgUser || th.Metadata["topic"] != "travel" {
		t.Fatalf("CreateThread: got %+v; want a UUID id, owner %q in user_id and metadata", th, pgUser)
	}
	older := f.seedThread(t, pgUser, 0)

	for i, content := range []string{"Plan a weekend in Lisbon with trams", "and pastries"} {
		m, err := f.svc.SendMessage(ctx, pgUser, th.ID, SendMessageInput{Content: content, ClientMessageID: fmt.Sprintf("c%d", i), Metadata: map[string]any{"n": i}})
		if err != nil {
			t.Fatalf("SendMessage: %v", err)
		}
		if m.Seq != int64(i+1) || m.Role != "user" || m.Content != content || m.ThreadID != th.ID {
			t.Fatalf("SendMessage: got %+v; want seq %d, role user", m, i+1)
		}
	}

	got, err := f.svc.GetThread(ctx, pgUser, th.ID)
	if err != nil || got.MessageCount != 2 || got.Title != "trip" {
		t.Fatalf("GetThread: got %+v, %v; want title trip and 2 messages", got, err)
	}

	ts, err := f.svc.ListThreads(ctx, pgUser, Page{Limit: 10})
	if err != nil || len(ts) != 2 || ts[0].ID != older.ID || ts[1].ID != th.ID || ts[1].MessageCount != 2 {
		t.Fatalf("ListThreads: got %+v, %v; want both threads, newest first, with counts", ts, err)
	}
	if page, err := f.svc.ListThreads(ctx, pgUser, Page{Offset: 1, Limit: 1}); err != nil || len(page) != 1 || page[0].ID != th.ID {
		t.Fatalf("ListThreads page 2: got %+v, %v; want the older thread", page, err)
	}

	newTitle := "Lisbon"
	up, err := f.svc.UpdateThread(ctx, pgUser, th.ID, UpdateThreadInput{Title: &newTitle, Metadata: map[string]any{"user_id": "mallory", "budget": 300.0}})
	if err != nil || up.Title != "Lisbon" || up.Metadata["budget"] != 300.0 || up.Metadata["topic"] != "travel" || up.Metadata["user_id"] != pgUser {
		t.Fatalf("UpdateThread: got %+v, %v; want the title set, budget merged, topic kept, user_id unchanged", up, err)
	}
	if !up.UpdatedAt.After(th.UpdatedAt) {
		t.Errorf("UpdateThread: updated_at %v not after %v", up.UpdatedAt, th.UpdatedAt)
	}

	msgs, err := f.svc.GetMessages(ctx, pgUser, th.ID, Page{Limit: 10})
	if err != nil || len(msgs) != 2 || msgs[0].Seq != 1 || msgs[1].Seq != 2 || msgs[0].ClientMessageID != "c0" || msgs[1].Metadata["n"] != 1.0 {
		t.Fatalf("GetMessages: got %+v, %v; want both messages in order", msgs, err)
	}

	rn, err := f.svc.AutoRename(ctx, pgUser, th.ID)
	if err != nil || rn.Title != "Plan a weekend in Lisbon with" {
		t.Fatalf("AutoRename: got %+v, %v; want the first six words", rn, err)
	}

	if err := f.svc.DeleteThread(ctx, pgUser, th.ID); err != nil {
		t.Fatalf("DeleteThread: %v", err)
	}
	if ts, err := f.svc.ListThreads(ctx, pgUser, Page{Limit: 10}); err != nil || len(ts) != 1 {
		t.Fatalf("ListThreads after delete: got %d, %v; want 1", len(ts), err)
	}
	f.mustClean(t)
}

// everyThreadOperation calls each operation that names a thread.
func everyThreadOperation(s *Service) map[string]func(ctx context.Context, user, id string) error {
	title := "x"
	return map[string]func(ctx context.Context, user, id string) error{
		"GetThread": func(ctx context.Context, u, id string) error { _, err := s.GetThread(ctx, u, id); return err },
		"UpdateThread": func(ctx context.Context, u, id string) error {
			_, err := s.UpdateThread(ctx, u, id, UpdateThreadInput{Title: &title})
			return err
		},
		"DeleteThread": func(ctx context.Context, u, id string) error { return s.DeleteThread(ctx, u, id) },
		"AutoRename":   func(ctx context.Context, u, id string) error { _, err := s.AutoRename(ctx, u, id); return err },
		"GetMessages": func(ctx context.Context, u, id string) error {
			_, err := s.GetMessages(ctx, u, id, Page{Limit: 10})
			return err
		},
		"SendMessage": func(ctx context.Context, u, id string) error {
			_, err := s.SendMessage(ctx, u, id, SendMessageInput{Content: "x"})
			return err
		},
	}
}

// ownershipCase: another user's thread, an archived thread and a missing
// one all answer ErrNotFound, for every operation, and change nothing.
func ownershipCase(ctx context.Context, tb testing.TB) error {
	tb.Helper()
	f := newPG(tb)
	mine := f.seedThread(tb, pgUser, 1)
	archived := f.seedThread(tb, pgUser, 1)
	if err := f.svc.DeleteThread(ctx, pgUser, archived.ID); err != nil {
		return err
	}
	cases := []struct{ name, user, id string }{
		{"other-user", "bob", mine.ID},
		{"archived", pgUser, archived.ID},
		{"missing", pgUser, "00000000-0000-4000-8000-000000000000"},
	}
	var errs []error
	ops := everyThreadOperation(f.svc)
	names := slices.Sorted(maps.Keys(ops))
	for _, c := range cases {
		for _, name := range names {
			if err := ops[name](ctx, c.user, c.id); !errors.Is(err, ErrNotFound) {
				errs = append(errs, fmt.Errorf("%s/%s: got %v; want ErrNotFound", c.name, name, err))
			}
		}
	}
	if ts, err := f.svc.ListThreads(ctx, "bob", Page{Limit: 10}); err != nil || len(ts) != 0 {
		errs = append(errs, fmt.Errorf("other-user/ListThreads: got %d threads, %v; want none of alice's", len(ts), err))
	}
	got, err := f.svc.GetThread(ctx, pgUser, mine.ID)
	if err != nil || got.Title != "seed" || got.MessageCount != 1 {
		errs = append(errs, fmt.Errorf("alice's thread after the others' attempts: %+v, %v; want it unchanged", got, err))
	}
	return errors.Join(append(errs, f.serverClean())...)
}

func TestPostgresOwnership(t *testing.T) {
	requireClean(t, ownershipCase(context.Background(), t))
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
