package leakcheck_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/sessionsafe/sessionsafe/internal/testkit"
	"github.com/sessionsafe/sessionsafe/leakcheck"
)

// A scope sees the goroutines its test started, and only those: two
// parallel tests, one leaking, one clean, checked while both run.
func TestScopeWithParallelTests(t *testing.T) {
	var bothStarted, bothChecked sync.WaitGroup
	bothStarted.Add(2)
	bothChecked.Add(2)
	tests := []struct {
		name string
		leak bool
	}{{"clean", false}, {"goroutine-outlives-the-call", true}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s := leakcheck.EnterScope(context.Background())
			defer s.Exit()
			if tt.leak {
				stop := spawnAndForget()
				t.Cleanup(stop)
			} else {
				spawnAndWait()
			}
			bothStarted.Done()
			bothStarted.Wait() // the other test's goroutine is running now
			err := leakcheck.FindScope(ctx(t), s, leakcheck.WithTimeout(short))
			bothChecked.Done()
			bothChecked.Wait()
			if !tt.leak {
				if err != nil {
					t.Fatalf("FindScope on clean code, next to a leaking parallel test: %v", err)
				}
				return
			}
			if !leakcheck.Has(err, leakcheck.CheckGoroutines) {
				t.Fatalf("FindScope = %v; want a goroutine finding", err)
			}
			mustContain(t, err, "1 goroutine started in scope", "leakcheck_test.spawnAndForget.func1 at leakcheck/goroutines_test.go:")
			t.Logf("the report:\n%v", err)
		})
	}
}

// Goroutines started by goroutines of the scope belong to it too; the
// pool's own goroutines are on the ignore list.
func TestScopeIsInheritedAndIgnoresThePool(t *testing.T) {
	s := leakcheck.EnterScope(context.Background())
	defer s.Exit()
	db, _ := newMock(t, nil)
	_ = db.PingContext(ctx(t)) // opens the pool's connection opener in the scope
	var stop func()
	done := make(chan struct{})
	go func() { defer close(done); stop = spawnAndForget() }()
	<-done
	defer stop()
	// The goroutine that started the planted one may still be on its way
	// out (on a loaded machine for longer than one check's timeout): check
	// until the test's deadline, for the planted goroutine alone. The count
	// only goes down, so a pool goroutine counted in would fail every check.
	testkit.EventuallyNil(t, func() error {
		err := leakcheck.Find(ctx(t), leakcheck.WithScope(s), leakcheck.WithTimeout(short))
		if err == nil || !strings.Contains(err.Error(), "1 goroutine started in scope") {
			return fmt.Errorf("want exactly the planted goroutine reported; got %v", err)
		}
		return nil
	}, "the scope check to report the planted goroutine alone")
}
