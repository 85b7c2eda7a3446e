package handlers

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/sessionsafe/sessionsafe/internal/drvwrap"
	"github.com/sessionsafe/sessionsafe/leakcheck"
)

// TestPostgresChecks: on a real server, GetMessages returns the thread's messages, a failed
// delete leaves no transaction or lock, and nothing is open while the title generator runs.
func TestPostgresChecks(t *testing.T) {
	requireChecksPass(t, []namedCheck{
		{"getMessagesCase", getMessagesCase},
		{"serverRollbackCase", serverRollbackCase},
		{"serverNothingHeldAcrossGeneratorCase", serverNothingHeldAcrossGeneratorCase},
	})
}

// getMessagesCase: GetMessages returns a thread's messages in order.
func getMessagesCase(ctx context.Context, tb testing.TB) error {
	tb.Helper()
	f := newPG(tb)
	th := f.seedThread(tb, pgUser, 3)
	msgs, err := f.svc.GetMessages(ctx, pgUser, th.ID, Page{Limit: 10})
	var errs []error
	if err != nil {
		errs = append(errs, fmt.Errorf("get messages: %w", err))
	} else if len(msgs) != 3 {
		errs = append(errs, fmt.Errorf("get messages: got %d; want 3", len(msgs)))
	}
	return errors.Join(append(errs, f.serverClean())...)
}

// serverRollbackCase: after a failed delete the server shows no open
// transaction and no lock.
func serverRollbackCase(ctx context.Context, tb testing.TB) error {
	tb.Helper()
	f := newPG(tb)
	th := f.seedThread(tb, pgUser, 0)
	f.failOnce(drvwrap.OpExec, sqlArchiveThread, func(context.Context) error { return errInjected })
	var errs []error
	wantErrIs(&errs, f.svc.DeleteThread(ctx, pgUser, th.ID), errInjected)
	return errors.Join(append(errs, f.serverClean())...)
}

// serverGenerator asks the server, with leakcheck, while generating, whether
// a backend of the service's pool is inside a transaction (or holds a lock).
type serverGenerator struct {
	f        *pgFixture
	problems []error
}

func (g *serverGenerator) GenerateTitle(ctx context.Context, first string) (string, error) {
	if err := leakcheck.FindServer(ctx, g.f.pg.Admin, g.f.pg.AppName, leakcheck.WithTimeout(time.Millisecond)); err != nil {
		g.problems = append(g.problems, fmt.Errorf("while the title generator ran: %w", err))
	}
	return "generated", nil
}

// serverNothingHeldAcrossGeneratorCase: no transaction is open on the
// server while AutoRename waits for its title generator.
func serverNothingHeldAcrossGeneratorCase(ctx context.Context, tb testing.TB) error {
	tb.Helper()
	gen := &serverGenerator{}
	f := newPG(tb, WithTitleGenerator(gen))
	gen.f = f
	th := f.seedThread(tb, pgUser, 1)
	var errs []error
	if _, err := f.svc.AutoRename(ctx, pgUser, th.ID); err != nil {
		errs = append(errs, fmt.Errorf("auto-rename: %w", err))
	}
	errs = append(errs, gen.problems...)
	return errors.Join(append(errs, f.serverClean())...)
}
