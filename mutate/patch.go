package mutate

import (
	"bytes"
	"context"
	"fmt"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/tools/go/packages"
)

// PatchOperator is the Operator of every mutant made from a Patch.
const PatchOperator = "patch"

// Patch is a hand-written mutant: in File, the snippet Old, which must occur exactly once,
// becomes New. Patches name known bugs that no operator makes (a read-modify-write in Go
// instead of one UPDATE, an ownership filter dropped from SQL), so they run through Run with
// the operators' mutants, and a patch can never drift silently from the code it mutates:
// Patched fails when Old no longer matches exactly once.
type Patch struct {
	// Name names the bug, e.g. "RollbackMissingOnError"; the mutant's ID is Name@file:line.
	Name string `json:"name"`
	// File is the Go file to change, relative to WithDir (slash-separated), e.g.
	// "handlers/uow.go". Test files cannot be patched.
	File string `json:"file"`
	// Old is the exact text to replace; New replaces it.
	Old string `json:"old"`
	New string `json:"new"`
}

// Patched turns patches into mutants that Run applies like the operators' ones (operator
// PatchOperator). It is an error — naming the patch and what was wrong — when a patch's
// file is not a non-test Go file of a package in a module, when Old does not occur in it
// exactly once, when two patches share a name, or when the patched file no longer parses.
//
// Patched reads WithDir.
func Patched(ctx context.Context, patches []Patch, opts ...Option) ([]Mutant, error) {
	c, err := newConfig("patched", []string{"WithDir"}, opts)
	if err != nil {
		return nil, err
	}
	names := map[string]bool{}
	pkgOf := map[string]*packages.Package{} // by directory
	var out []Mutant
	for _, p := range patches {
		errf := func(format string, args ...any) error {
			return fmt.Errorf("mutate: patch %q: "+format, append([]any{p.Name}, args...)...)
		}
		switch {
		case p.Name == "" || strings.ContainsAny(p.Name, "@ \t\n"):
			return nil, errf("want a name without spaces or @")
		case names[p.Name]:
			return nil, errf("two patches have this name")
		case !strings.HasSuffix(p.File, ".go") || strings.HasSuffix(p.File, "_test.go"):
			return nil, errf("file %q: want a Go file that is not a test", p.File)
		case p.Old == "" || p.Old == p.New:
			return nil, errf("want a non-empty Old that New changes")
		}
		names[p.Name] = true
		path := filepath.Join(c.dir, filepath.FromSlash(p.File))
		if abs, err := filepath.Abs(path); err == nil {
			path = abs
		}
		src, err := os.ReadFile(path)
		if err != nil {
			return nil, errf("%w", err)
		}
		if n := bytes.Count(src, []byte(p.Old)); n != 1 {
			return nil, errf("the old snippet occurs %d times in %s; want exactly once (has the code changed under the patch?)", n, p.File)
		}
		dir := filepath.Dir(path)
		pkg := pkgOf[dir]
		if pkg == nil {
			pkgs, err := packages.Load(&packages.Config{Context: ctx, Dir: dir, Mode: packages.NeedName | packages.NeedModule}, ".")
			if err != nil {
				return nil, errf("load the package of %s: %w", p.File, err)
			}
			if len(pkgs) != 1 || len(pkgs[0].Errors) > 0 || pkgs[0].Module == nil {
				return nil, errf("%s is not in a package of a module", p.File)
			}
			pkg = pkgs[0]
			pkgOf[dir] = pkg
		}
		start := bytes.Index(src, []byte(p.Old))
		edits := []edit{{start: start, end: start + len(p.Old), text: p.New}}
		mutated := apply(src, edits)
		if _, err := parser.ParseFile(token.NewFileSet(), path, mutated, parser.SkipObjectResolution); err != nil {
			return nil, errf("the patched %s does not parse: %w", p.File, err)
		}
		rel, err := filepath.Rel(pkg.Module.Dir, path)
		if err != nil {
			return nil, errf("%w", err)
		}
		rel = filepath.ToSlash(rel)
		line := 1 + bytes.Count(src[:start], []byte("\n"))
		out = append(out, Mutant{
			ID: fmt.Sprintf("%s@%s:%d", p.Name, rel, line), Operator: PatchOperator, Package: pkg.PkgPath,
			File: rel, Line: line, Diff: unifiedDiff(rel, src, mutated, 2),
			path: path, modDir: pkg.Module.Dir, edits: edits,
		})
	}
	return out, nil
}
