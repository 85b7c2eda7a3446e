package scenarios

import (
	"context"
	"testing"
	"time"
)

// TestRunScopedHang: a run that honours its context but is slow to return once it ends (as
// on a loaded machine, waiting for a CPU) is not reported hung when it returns within its
// Timeout again; a run that ignores its context is.
func TestRunScopedHang(t *testing.T) {
	tests := []struct {
		name     string
		timeout  time.Duration
		unwind   time.Duration // how long the call takes to return after its deadline; <0: never
		wantHung bool
	}{
		{"slow-unwind", 3 * time.Second, 2200 * time.Millisecond, false},
		{"ignores-context", 200 * time.Millisecond, -1, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r := &Runner{cfg: Config{Timeout: tt.timeout}}
			ctx, cancel := context.WithTimeout(t.Context(), tt.timeout)
			defer cancel()
			release := make(chan struct{})
			t.Cleanup(func() { close(release) }) // frees a call left running
			o := r.runScoped(ctx, func() error {
				<-ctx.Done()
				if tt.unwind < 0 {
					<-release
					return nil
				}
				time.Sleep(tt.unwind) // the unwinding's own time, not a wait for a condition
				return ctx.Err()
			})
			if o.hung != tt.wantHung {
				t.Errorf("hung = %v after %v; want %v (Timeout %v, the call returns %v after its deadline)",
					o.hung, o.runTime.Round(time.Millisecond), tt.wantHung, tt.timeout, tt.unwind)
			}
		})
	}
}
