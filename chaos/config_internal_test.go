package chaos

import (
	"errors"
	"math"
	"runtime"
	"strings"
	"testing"
	"time"
)

func TestConfigValidate(t *testing.T) {
	ok := Config{Workers: 2, Ops: 10, FaultRate: 0.03}
	tests := []struct {
		name string
		edit func(*Config)
		want string // in the error; "" for a valid config
	}{
		{"valid", func(*Config) {}, ""},
		{"rate-zero", func(c *Config) { c.FaultRate = 0 }, ""},
		{"rate-one", func(c *Config) { c.FaultRate = 1 }, ""},
		{"rate-nan", func(c *Config) { c.FaultRate = math.NaN() }, "fault rate NaN"},
		{"rate-inf", func(c *Config) { c.FaultRate = math.Inf(1) }, "fault rate +Inf"},
		{"rate-negative", func(c *Config) { c.FaultRate = -0.1 }, "fault rate -0.1"},
		{"rate-above-one", func(c *Config) { c.FaultRate = 1.5 }, "fault rate 1.5"},
		{"workers", func(c *Config) { c.Workers = 0 }, "workers 0"},
		{"ops-negative", func(c *Config) { c.Ops = -1 }, "ops -1"},
		{"duration-negative", func(c *Config) { c.Duration = -time.Second }, "duration -1s"},
		{"never-ends", func(c *Config) { c.Ops = 0 }, "never end"},
		{"terminate-negative", func(c *Config) { c.TerminateEvery = -time.Second }, "terminate every -1s"},
		{"op-timeout-negative", func(c *Config) { c.OpTimeout = -time.Second }, "op timeout -1s"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := ok
			tt.edit(&c)
			err := c.validate()
			if tt.want == "" {
				if err != nil {
					t.Fatalf("validate: %v; want nil", err)
				}
				return
			}
			if !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("validate: got %v; want an ErrConfig naming %q", err, tt.want)
			}
		})
	}
}

// TestDefaultOpTimeout: 5s up to four workers per CPU, 5s more per four more, at most 2m.
func TestDefaultOpTimeout(t *testing.T) {
	per := 4 * runtime.GOMAXPROCS(0)
	tests := []struct {
		name    string
		workers int
		want    time.Duration
	}{
		{"one", 1, 5 * time.Second},
		{"four-per-cpu", per, 5 * time.Second},
		{"one-more", per + 1, 10 * time.Second},
		{"eight-per-cpu", 2 * per, 10 * time.Second},
		{"capped", 100 * per, 2 * time.Minute},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := DefaultOpTimeout(tt.workers); got != tt.want {
				t.Errorf("DefaultOpTimeout(%d) with GOMAXPROCS %d = %s; want %s", tt.workers, runtime.GOMAXPROCS(0), got, tt.want)
			}
		})
	}
	c := Config{Workers: 2 * per, Ops: 1}
	c.defaults()
	if c.OpTimeout != 10*time.Second || c.CheckTimeout != 4*time.Second {
		t.Errorf("defaults for %d workers: OpTimeout %s, CheckTimeout %s; want 10s, 4s", c.Workers, c.OpTimeout, c.CheckTimeout)
	}
}
