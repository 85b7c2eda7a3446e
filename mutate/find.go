package mutate

import (
	"context"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"go/types"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"golang.org/x/tools/go/packages"
)

// Find loads the packages the patterns name (as go build does, relative to WithDir) with
// their types and returns a mutant for every site of every operator, sorted by file, line
// and operator. Test files are never mutated. A package that does not type-check is an
// error: its sites cannot be told apart from look-alikes.
//
// Find reads WithDir and WithOperators.
func Find(ctx context.Context, patterns []string, opts ...Option) ([]Mutant, error) {
	c, err := newConfig("find", []string{"WithDir", "WithOperators"}, opts)
	if err != nil {
		return nil, err
	}
	ops, err := selectOperators(c.operators)
	if err != nil {
		return nil, err
	}
	pkgs, err := packages.Load(&packages.Config{
		Context: ctx,
		Dir:     c.dir,
		Mode: packages.NeedName | packages.NeedFiles | packages.NeedSyntax | packages.NeedTypes |
			packages.NeedTypesInfo | packages.NeedImports | packages.NeedModule,
	}, patterns...)
	if err != nil {
		return nil, fmt.Errorf("mutate: find: load %s: %w", strings.Join(patterns, " "), err)
	}
	if len(pkgs) == 0 {
		return nil, fmt.Errorf("mutate: find: no packages match %s", strings.Join(patterns, " "))
	}
	var out []Mutant
	for _, p := range pkgs {
		if len(p.Errors) > 0 {
			return nil, fmt.Errorf("mutate: find: package %s: %v", p.PkgPath, p.Errors[0])
		}
		if p.Module == nil {
			return nil, fmt.Errorf("mutate: find: package %s is not in a module", p.PkgPath)
		}
		ms, err := findInPackage(p, ops)
		if err != nil {
			return nil, err
		}
		out = append(out, ms...)
	}
	sort.SliceStable(out, func(i, j int) bool {
		a, b := out[i], out[j]
		if a.File != b.File {
			return a.File < b.File
		}
		if a.Line != b.Line {
			return a.Line < b.Line
		}
		return a.Operator < b.Operator
	})
	return out, nil
}

func selectOperators(ids []string) ([]operator, error) {
	if len(ids) == 0 {
		return operators, nil
	}
	var out []operator
	for _, id := range ids {
		found := false
		for _, op := range operators {
			if op.id == id {
				out, found = append(out, op), true
			}
		}
		if !found {
			return nil, fmt.Errorf("mutate: unknown operator %q; want one of %s", id, strings.Join(operatorIDs(), ", "))
		}
	}
	return out, nil
}

func findInPackage(p *packages.Package, ops []operator) ([]Mutant, error) {
	var out []Mutant
	for _, f := range p.Syntax {
		tf := p.Fset.File(f.Pos())
		if tf == nil || !strings.HasSuffix(tf.Name(), ".go") {
			continue // cgo's generated files have no source of their own to mutate
		}
		path := tf.Name()
		src, err := os.ReadFile(path)
		if err != nil {
			return nil, fmt.Errorf("mutate: find: %w", err)
		}
		rel, err := filepath.Rel(p.Module.Dir, path)
		if err != nil {
			return nil, fmt.Errorf("mutate: find: %w", err)
		}
		rel = filepath.ToSlash(rel)
		eqs, err := equivalences(p.Fset, f, src, rel)
		if err != nil {
			return nil, err
		}
		fd := newFinder(p, f, src)
		seen := map[string]int{}
		for _, op := range ops {
			fd.sites = nil
			walk(f, func(n ast.Node, stack []ast.Node) { op.find(fd, n, stack) })
			for _, s := range dedupe(fd.sites) {
				line := p.Fset.Position(s.pos).Line
				id := fmt.Sprintf("%s@%s:%d", op.id, rel, line)
				seen[id]++
				if k := seen[id]; k > 1 {
					id = fmt.Sprintf("%s#%d", id, k)
				}
				mutated := apply(src, s.edits)
				if _, err := parser.ParseFile(token.NewFileSet(), path, mutated, parser.SkipObjectResolution); err != nil {
					return nil, fmt.Errorf("mutate: find: operator %s made %s:%d unparsable (a bug in mutate): %w", op.id, rel, line, err)
				}
				out = append(out, Mutant{
					ID: id, Operator: op.id, Package: p.PkgPath, File: rel, Line: line,
					Diff: unifiedDiff(rel, src, mutated, 2), Equivalent: excuse(eqs, op.id, line),
					path: path, modDir: p.Module.Dir, edits: s.edits,
				})
			}
		}
		if err := unusedEquivalence(eqs, ops); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// dedupe drops a site whose edits repeat an earlier one's (one constant used by two calls).
func dedupe(sites []site) []site {
	var out []site
	seen := map[string]bool{}
	for _, s := range sites {
		k := fmt.Sprint(s.edits)
		if !seen[k] {
			seen[k] = true
			out = append(out, s)
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].pos < out[j].pos })
	return out
}

// walk calls f for every node under root with the stack of its ancestors (root first).
func walk(root ast.Node, f func(n ast.Node, stack []ast.Node)) {
	var stack []ast.Node
	ast.Inspect(root, func(n ast.Node) bool {
		if n == nil {
			stack = stack[:len(stack)-1]
			return true
		}
		f(n, stack)
		stack = append(stack, n)
		return true
	})
}

// site is one place an operator applies, and the edits that mutate it.
type site struct {
	pos   token.Pos
	edits []edit
}

// kind is what a value is to the database.
type kind int

const (
	kindNone    kind = iota
	kindPool         // *sql.DB, *pgxpool.Pool
	kindTx           // *sql.Tx, pgx.Tx, *pgxpool.Tx
	kindConn         // *sql.Conn, *pgx.Conn, *pgxpool.Conn
	kindStmt         // *sql.Stmt
	kindRows         // *sql.Rows, pgx.Rows
	kindQuerier      // an interface a *sql.Tx or a pgx.Tx satisfies: the sqlc DBTX shape
)

const (
	pathSQL  = "database/sql"
	pathPgx  = "github.com/jackc/pgx/v5"
	pathPool = "github.com/jackc/pgx/v5/pgxpool"
)

var kinds = map[[2]string]kind{
	{pathSQL, "DB"}: kindPool, {pathSQL, "Tx"}: kindTx, {pathSQL, "Conn"}: kindConn,
	{pathSQL, "Stmt"}: kindStmt, {pathSQL, "Rows"}: kindRows,
	{pathPgx, "Tx"}: kindTx, {pathPgx, "Conn"}: kindConn, {pathPgx, "Rows"}: kindRows,
	{pathPool, "Pool"}: kindPool, {pathPool, "Conn"}: kindConn, {pathPool, "Tx"}: kindTx,
}

// finder holds what the operators need to know of one file.
type finder struct {
	pkg   *packages.Package
	info  *types.Info
	file  *ast.File
	src   []byte
	txs   []types.Type // *sql.Tx and pgx.Tx, where the package can see them
	sites []site
}

func newFinder(p *packages.Package, f *ast.File, src []byte) *finder {
	fd := &finder{pkg: p, info: p.TypesInfo, file: f, src: src}
	for _, want := range [][2]string{{pathSQL, "Tx"}, {pathPgx, "Tx"}} {
		if t := lookupType(p.Types, want[0], want[1]); t != nil {
			if _, isIface := t.Underlying().(*types.Interface); !isIface {
				t = types.NewPointer(t)
			}
			fd.txs = append(fd.txs, t)
		}
	}
	return fd
}

// lookupType finds the named type path.name among the packages pkg imports, directly or not.
func lookupType(pkg *types.Package, path, name string) types.Type {
	seen := map[*types.Package]bool{}
	var visit func(p *types.Package) types.Type
	visit = func(p *types.Package) types.Type {
		if seen[p] {
			return nil
		}
		seen[p] = true
		if p.Path() == path {
			if tn, ok := p.Scope().Lookup(name).(*types.TypeName); ok {
				return tn.Type()
			}
			return nil
		}
		for _, q := range p.Imports() {
			if t := visit(q); t != nil {
				return t
			}
		}
		return nil
	}
	return visit(pkg)
}

// kindOf says what a value of type t is to the database.
func (fd *finder) kindOf(t types.Type) kind {
	if t == nil {
		return kindNone
	}
	if p, ok := t.(*types.Pointer); ok {
		t = p.Elem()
	}
	if n, ok := types.Unalias(t).(*types.Named); ok && n.Obj().Pkg() != nil {
		if k, ok := kinds[[2]string{n.Obj().Pkg().Path(), n.Obj().Name()}]; ok {
			return k
		}
	}
	if it, ok := t.Underlying().(*types.Interface); ok && it.NumMethods() > 0 {
		for _, tx := range fd.txs {
			if types.Implements(tx, it) {
				return kindQuerier
			}
		}
	}
	return kindNone
}

// dbCall is a method call on a database value: recv.method(args).
type dbCall struct {
	call   *ast.CallExpr
	recv   ast.Expr
	method string
	kind   kind
	sig    *types.Signature
}

func (fd *finder) asDBCall(n ast.Node) (dbCall, bool) {
	call, ok := n.(*ast.CallExpr)
	if !ok {
		return dbCall{}, false
	}
	sel, ok := ast.Unparen(call.Fun).(*ast.SelectorExpr)
	if !ok {
		return dbCall{}, false
	}
	s := fd.info.Selections[sel]
	if s == nil || s.Kind() != types.MethodVal {
		return dbCall{}, false
	}
	k := fd.kindOf(fd.info.TypeOf(sel.X))
	if k == kindNone {
		return dbCall{}, false
	}
	sig, _ := s.Type().(*types.Signature)
	return dbCall{call: call, recv: sel.X, method: sel.Sel.Name, kind: k, sig: sig}, true
}

// text is the source of a node.
func (fd *finder) text(n ast.Node) string {
	return string(fd.src[fd.off(n.Pos()):fd.off(n.End())])
}

func (fd *finder) off(p token.Pos) int { return fd.pkg.Fset.Position(p).Offset }

// replace is the edit that puts text in place of n.
func (fd *finder) replace(n ast.Node, text string) edit {
	return edit{start: fd.off(n.Pos()), end: fd.off(n.End()), text: text}
}

func (fd *finder) add(pos token.Pos, edits ...edit) {
	fd.sites = append(fd.sites, site{pos: pos, edits: edits})
}

// isError reports whether e has type error.
func (fd *finder) isError(e ast.Expr) bool {
	t := fd.info.TypeOf(e)
	return t != nil && types.Identical(t, types.Universe.Lookup("error").Type())
}

// isNamed reports whether t is the named type path.name.
func isNamed(t types.Type, path, name string) bool {
	n, ok := types.Unalias(t).(*types.Named)
	return ok && n.Obj().Pkg() != nil && n.Obj().Pkg().Path() == path && n.Obj().Name() == name
}

// neutralize is the edit that undoes a call whose result is discarded or an error: the
// statement becomes `_ = recv` (keeping every variable used), or the call `error(nil)`.
func (fd *finder) neutralize(c dbCall, stack []ast.Node) (edit, bool) {
	if len(stack) == 0 {
		return edit{}, false
	}
	keep := "_ = " + fd.text(c.recv)
	switch p := stack[len(stack)-1].(type) {
	case *ast.ExprStmt:
		return fd.replace(p, keep), true
	case *ast.DeferStmt:
		return fd.replace(p, keep), true
	case *ast.AssignStmt:
		if len(p.Rhs) == 1 && p.Rhs[0] == c.call && allBlank(p.Lhs) {
			return fd.replace(p, keep), true
		}
	}
	if fd.isError(c.call) {
		return fd.replace(c.call, "error(nil)"), true
	}
	return edit{}, false
}

func allBlank(es []ast.Expr) bool {
	for _, e := range es {
		if id, ok := e.(*ast.Ident); !ok || id.Name != "_" {
			return false
		}
	}
	return true
}

// deferred reports whether the innermost statement around the node is a defer, or the node
// is in a function literal that is deferred.
func deferred(stack []ast.Node) bool {
	for i := len(stack) - 1; i >= 0; i-- {
		switch n := stack[i].(type) {
		case *ast.DeferStmt:
			return true
		case *ast.FuncLit:
			return i >= 2 && isDeferOf(stack[i-2], stack[i-1], n)
		case *ast.FuncDecl:
			return false
		}
	}
	return false
}

func isDeferOf(stmt, call ast.Node, lit *ast.FuncLit) bool {
	d, ok := stmt.(*ast.DeferStmt)
	return ok && d.Call == call && d.Call.Fun == lit
}

// inErrorBranch reports whether the node is in the body of an if whose condition tests an
// error against nil (err != nil, possibly joined with other conditions by && or ||), within
// the same function.
func (fd *finder) inErrorBranch(stack []ast.Node) bool {
	for i := len(stack) - 1; i >= 1; i-- {
		switch n := stack[i].(type) {
		case *ast.FuncLit, *ast.FuncDecl:
			return false
		case *ast.BlockStmt:
			if ifs, ok := stack[i-1].(*ast.IfStmt); ok && ifs.Body == n && fd.testsErr(ifs.Cond) {
				return true
			}
		}
	}
	return false
}

func (fd *finder) testsErr(e ast.Expr) bool {
	b, ok := ast.Unparen(e).(*ast.BinaryExpr)
	if !ok {
		return false
	}
	switch b.Op {
	case token.LAND, token.LOR:
		return fd.testsErr(b.X) || fd.testsErr(b.Y)
	case token.NEQ:
		return (fd.isError(b.X) && isNil(b.Y)) || (fd.isError(b.Y) && isNil(b.X))
	}
	return false
}

func isNil(e ast.Expr) bool {
	id, ok := ast.Unparen(e).(*ast.Ident)
	return ok && id.Name == "nil"
}

// poolInScope returns the source of a pool (*sql.DB, *pgxpool.Pool) reachable at pos: a
// variable in scope declared before pos, or a field of one (s.db), nearest scope first; and
// its type.
func (fd *finder) poolInScope(pos token.Pos) (string, types.Type) {
	for s := fd.pkg.Types.Scope().Innermost(pos); s != nil && s != types.Universe; s = s.Parent() {
		names := s.Names()
		for _, name := range names {
			v, ok := s.Lookup(name).(*types.Var)
			if !ok || (s != fd.pkg.Types.Scope() && v.Pos() > pos) || name == "_" {
				continue
			}
			if fd.kindOf(v.Type()) == kindPool {
				return name, v.Type()
			}
		}
		for _, name := range names {
			v, ok := s.Lookup(name).(*types.Var)
			if !ok || (s != fd.pkg.Types.Scope() && v.Pos() > pos) || name == "_" {
				continue
			}
			t := v.Type()
			if p, ok := t.Underlying().(*types.Pointer); ok {
				t = p.Elem()
			}
			st, ok := t.Underlying().(*types.Struct)
			if !ok {
				continue
			}
			for i := range st.NumFields() {
				f := st.Field(i)
				if fd.kindOf(f.Type()) == kindPool && (f.Exported() || f.Pkg() == fd.pkg.Types) {
					return name + "." + f.Name(), f.Type()
				}
			}
		}
	}
	return "", nil
}

// contextName is the name the file imports package context under, or "".
func (fd *finder) contextName() string {
	for _, imp := range fd.file.Imports {
		if imp.Path.Value != `"context"` {
			continue
		}
		if imp.Name == nil {
			return "context"
		}
		if imp.Name.Name == "_" || imp.Name.Name == "." {
			return ""
		}
		return imp.Name.Name
	}
	return ""
}

// lineStart and lineEnd are the offsets of the start of pos's line and of the end of end's
// line, past its newline.
func (fd *finder) lineStart(pos token.Pos) int {
	o := fd.off(pos)
	for o > 0 && fd.src[o-1] != '\n' {
		o--
	}
	return o
}

func (fd *finder) lineEnd(end token.Pos) int {
	o := fd.off(end)
	for o < len(fd.src) && fd.src[o] != '\n' {
		o++
	}
	if o < len(fd.src) {
		o++
	}
	return o
}
