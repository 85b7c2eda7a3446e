package report

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
)

// WriteJSON writes r as indented JSON (the stable schema named by Schema).
// Empty lists are written as [] rather than null, so readers need no special case.
func WriteJSON(w io.Writer, r *Report) error {
	c := *r
	if c.Args == nil {
		c.Args = []string{}
	}
	if c.Backends == nil {
		c.Backends = []string{}
	}
	if c.Cases == nil {
		c.Cases = []Case{}
	}
	if c.Chaos == nil {
		c.Chaos = []ChaosRun{}
	}
	if c.Violations == nil {
		c.Violations = []Violation{}
	}
	if c.Errors == nil {
		c.Errors = []string{}
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	if err := enc.Encode(&c); err != nil {
		return fmt.Errorf("write json report: %w", err)
	}
	return nil
}

// ReadJSON reads a report written by WriteJSON.
func ReadJSON(path string) (*Report, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read report: %w", err)
	}
	var r Report
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("read report %s: %w", path, err)
	}
	if r.Schema != Schema {
		return nil, fmt.Errorf("read report %s: schema %q, want %q", path, r.Schema, Schema)
	}
	return &r, nil
}
