package handlers

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/sessionsafe/sessionsafe/internal/testkit"
)

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
	errs := testkit.FanOut(len(ids), func(i int) error {
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
	problems = append(problems, f.serverClean())
	return errors.Join(problems...)
}

func TestPostgresRetriedSendNoDuplicate(t *testing.T) {
	requireClean(t, retriedSendCase(context.Background(), t))
}
