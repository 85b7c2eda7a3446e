package probes

import (
	"strings"
	"testing"
)

func TestAppName(t *testing.T) {
	long := "pgt_" + strings.Repeat("x", 48) + "_0123456789" // 63 bytes, as pgtest makes them
	tests := []struct {
		name, prefix string
		g            int
		want         string
	}{
		{"short", "app", 3, "app-g3"},
		{"long keeps its unique tail", long, 12, long[:63-4-11] + "~0123456789-g12"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := appName(tt.prefix, tt.g)
			if got != tt.want || len(got) > maxAppName {
				t.Errorf("appName(%q, %d) = %q (%d bytes); want %q, at most %d bytes", tt.prefix, tt.g, got, len(got), tt.want, maxAppName)
			}
		})
	}
}
