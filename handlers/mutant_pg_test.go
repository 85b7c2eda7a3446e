package handlers

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/sessionsafe/sessionsafe/internal/drvwrap"
	"github.com/sessionsafe/sessionsafe/internal/mutant"
	"github.com/sessionsafe/sessionsafe/leakcheck"
)

// plantedOnPostgres names, for bugs caught on a real server, the check that
// catches them. Some are also caught on sqlmock: here the server itself
// shows the damage.
var plantedOnPostgres = map[mutant.Bug]check{
	mutant.RowsNotClosed:              getMessagesCase,
	mutant.SendRetryWithoutClientID:   retriedSendCase,
	mutant.RollbackMissingOnError:     serverRollbackCase,
	mutant.TxHeldAcrossTitleGenerator: serverNothingHeldAcrossGeneratorCase,
}

func TestPlantedBugsCaughtOnPostgres(t *testing.T) {
	requirePlantedCaught(t, plantedOnPostgres)
}

// TestTestBugsCaughtOnPostgres: the checks with no internal/mutant bug of
// their own fail on a bug planted through the package's test seam.
func TestTestBugsCaughtOnPostgres(t *testing.T) {
	forEachCheck(t, []namedCheck{
		{"NoOwnerFilter/ownership", ownershipCase(bugNoOwnerFilter)},
	}, func(t *testing.T, err error) {
		if err == nil {
			t.Fatal("with the bug planted the check passed; want it to report the bug")
		}
		t.Logf("caught: %v", err)
	})
}

func TestPostgresChecksPassWithoutBugs(t *testing.T) {
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
	return errors.Join(append(errs, f.serverClean(time.Second))...)
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
	return errors.Join(append(errs, f.serverClean(500*time.Millisecond))...)
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
	return errors.Join(append(errs, f.serverClean(time.Second))...)
}
