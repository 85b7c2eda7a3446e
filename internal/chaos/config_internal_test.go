package chaos

import (
	"errors"
	"math"
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
