package report

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
)

// Paths names the files a report is written to; an empty path is not written.
type Paths struct {
	JSON, JUnit, HTML string
}

// InDir returns the three report paths inside dir (report.json, junit.xml, report.html).
func InDir(dir string) Paths {
	return Paths{
		JSON:  filepath.Join(dir, "report.json"),
		JUnit: filepath.Join(dir, "junit.xml"),
		HTML:  filepath.Join(dir, "report.html"),
	}
}

// Write writes r to every path set in p, each through a temporary file renamed into place so
// a reader never sees half a report, and returns the paths written.
func Write(r *Report, p Paths) ([]string, error) {
	var written []string
	for _, f := range []struct {
		path  string
		write func(io.Writer, *Report) error
	}{{p.JSON, WriteJSON}, {p.JUnit, WriteJUnit}, {p.HTML, WriteHTML}} {
		if f.path == "" {
			continue
		}
		if err := WriteFile(f.path, func(w io.Writer) error { return f.write(w, r) }); err != nil {
			return written, err
		}
		written = append(written, f.path)
	}
	return written, nil
}

// WriteFile writes a file through write, as Write writes each report: into a temporary file
// in path's directory (made if missing), renamed into place once complete, so that a reader
// never sees half a file. Other sessionsafe reports (the mutation report) are written with it.
func WriteFile(path string, write func(io.Writer) error) (err error) {
	if dir := filepath.Dir(path); dir != "" {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return fmt.Errorf("write report %s: %w", path, err)
		}
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".report-*")
	if err != nil {
		return fmt.Errorf("write report %s: %w", path, err)
	}
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	if err := write(tmp); err != nil {
		return fmt.Errorf("write report %s: %w", path, err)
	}
	if err := tmp.Chmod(0o644); err != nil {
		return fmt.Errorf("write report %s: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("write report %s: %w", path, err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("write report %s: %w", path, err)
	}
	return nil
}
