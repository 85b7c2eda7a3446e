package faults_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/sessionsafe/sessionsafe/faults"
)

func TestTimeoutsSQL(t *testing.T) {
	tests := []struct {
		name string
		in   faults.Timeouts
		want string
	}{
		{name: "zero", in: faults.Timeouts{}, want: ""},
		{name: "statement", in: faults.Timeouts{Statement: 50 * time.Millisecond}, want: "SET statement_timeout = 50"},
		{name: "all", in: faults.Timeouts{Statement: time.Second, Lock: 20 * time.Millisecond, IdleInTransaction: time.Minute},
			want: "SET statement_timeout = 1000; SET lock_timeout = 20; SET idle_in_transaction_session_timeout = 60000"},
		{name: "sub-millisecond-rounds-up", in: faults.Timeouts{Lock: time.Microsecond}, want: "SET lock_timeout = 1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.in.SQL(); got != tt.want {
				t.Errorf("SQL() = %q; want %q", got, tt.want)
			}
		})
	}
}

// TestServerRejectsEmptyAppName keeps an empty application_name from
// matching sessions that are not the caller's.
func TestServerRejectsEmptyAppName(t *testing.T) {
	srv := faults.NewServer(nil)
	ctx := context.Background()
	calls := []struct {
		name string
		call func() error
	}{
		{"sessions", func() error { _, err := srv.Sessions(ctx, ""); return err }},
		{"terminate", func() error { _, err := srv.TerminateBackends(ctx, ""); return err }},
		{"cancel", func() error { _, err := srv.CancelBackends(ctx, ""); return err }},
		{"wait-gone", func() error { return srv.WaitGone(ctx, "") }},
		{"wait-blocked", func() error { return srv.WaitBlocked(ctx, "") }},
	}
	for _, c := range calls {
		t.Run(c.name, func(t *testing.T) {
			if err := c.call(); !errors.Is(err, faults.ErrServerAppName) {
				t.Errorf("got %v; want ErrServerAppName", err)
			}
		})
	}
}
