package mutate

import (
	"go/ast"
	"go/token"
	"go/types"
	"regexp"
	"strings"
)

// Operator describes one kind of planted session bug.
type Operator struct {
	// ID is the operator's stable name, e.g. "drop-deferred-rollback".
	ID string `json:"id"`
	// Description says in one line what the operator does to the code.
	Description string `json:"description"`
}

type operator struct {
	id, desc string
	find     func(fd *finder, n ast.Node, stack []ast.Node)
}

// Operators returns every operator, in a fixed order.
func Operators() []Operator {
	out := make([]Operator, len(operators))
	for i, op := range operators {
		out[i] = Operator{ID: op.id, Description: op.desc}
	}
	return out
}

func operatorIDs() []string {
	var ids []string
	for _, op := range operators {
		ids = append(ids, op.id)
	}
	return ids
}

var operators = []operator{
	{"drop-deferred-rollback", "drop a deferred Rollback of a transaction (defer tx.Rollback(), or one inside a deferred func)", findDeferredRollback},
	{"drop-rollback-on-error", "drop a tx.Rollback call inside an if err != nil branch", findRollbackOnError},
	{"return-nil-after-rollback", "return nil instead of the error after rolling a transaction back", findReturnNilAfterRollback},
	{"ignore-commit-error", "call Commit but ignore its error", findIgnoreCommitError},
	{"call-before-commit", "move the call that follows a successful Commit to before the Commit", findCallBeforeCommit},
	{"drop-rows-close", "drop rows.Close(), deferred or not", findRowsClose},
	{"drop-rows-err-check", "drop the check of rows.Err() after iterating", findRowsErrCheck},
	{"drop-conn-release", "drop the Close of a *sql.Conn or *pgx.Conn, or the Release of a *pgxpool.Conn", findConnRelease},
	{"drop-stmt-close", "drop the Close of a prepared *sql.Stmt", findStmtClose},
	{"context-background", "give a database call context.Background() (or a context without cancel) instead of the caller's", findContextBackground},
	{"tx-call-on-pool", "send a call made on a transaction to the pool in scope instead", findTxCallOnPool},
	{"tx-arg-to-pool", "pass the pool in scope where a transaction is passed as a querier (DBTX)", findTxArgToPool},
	{"drop-for-update", "drop FOR UPDATE (FOR NO KEY UPDATE, FOR SHARE) from SQL passed to a database call", findForUpdate},
	{"set-local-to-set", "turn SET LOCAL into SET (session-wide) in SQL passed to a database call", findSetLocal},
	{"drop-defer-cancel", "drop a defer cancel() of a context.WithCancel/WithTimeout/WithDeadline", findDeferCancel},
}

func findDeferredRollback(fd *finder, n ast.Node, stack []ast.Node) {
	c, ok := fd.asDBCall(n)
	if !ok || c.kind != kindTx || c.method != "Rollback" || !deferred(stack) {
		return
	}
	if e, ok := fd.neutralize(c, stack); ok {
		fd.add(c.call.Pos(), e)
	}
}

func findRollbackOnError(fd *finder, n ast.Node, stack []ast.Node) {
	c, ok := fd.asDBCall(n)
	if !ok || c.kind != kindTx || c.method != "Rollback" || deferred(stack) || !fd.inErrorBranch(stack) {
		return
	}
	if e, ok := fd.neutralize(c, stack); ok {
		fd.add(c.call.Pos(), e)
	}
}

// findReturnNilAfterRollback: a return, in the block of a statement that rolls back, whose
// error result is not nil.
func findReturnNilAfterRollback(fd *finder, n ast.Node, stack []ast.Node) {
	block, ok := n.(*ast.BlockStmt)
	if !ok {
		return
	}
	rolledBack := false
	for _, st := range block.List {
		if !rolledBack && fd.rollsBack(st) {
			rolledBack = true
			continue
		}
		ret, ok := st.(*ast.ReturnStmt)
		if !rolledBack || !ok || len(ret.Results) == 0 {
			continue
		}
		last := ret.Results[len(ret.Results)-1]
		if fd.isError(last) && !isNil(last) {
			fd.add(last.Pos(), fd.replace(last, "nil"))
		}
	}
}

// rollsBack reports whether the statement itself rolls a transaction back: tx.Rollback(),
// _ = tx.Rollback(), err := tx.Rollback(), or an if with such an init.
func (fd *finder) rollsBack(st ast.Stmt) bool {
	var e ast.Expr
	switch x := st.(type) {
	case *ast.ExprStmt:
		e = x.X
	case *ast.AssignStmt:
		if len(x.Rhs) == 1 {
			e = x.Rhs[0]
		}
	case *ast.IfStmt:
		if x.Init != nil {
			return fd.rollsBack(x.Init)
		}
	}
	c, ok := fd.asDBCall(e)
	return ok && c.kind == kindTx && c.method == "Rollback"
}

// commitIn returns the Commit call on a transaction that expression or statement n is, or
// holds at its top (err := tx.Commit(), tx.Commit() != nil).
func (fd *finder) commitIn(n ast.Node) (dbCall, bool) {
	switch x := n.(type) {
	case *ast.AssignStmt:
		if len(x.Rhs) == 1 {
			return fd.commitIn(x.Rhs[0])
		}
	case *ast.ExprStmt:
		return fd.commitIn(x.X)
	case *ast.BinaryExpr:
		if c, ok := fd.commitIn(x.X); ok {
			return c, ok
		}
		return fd.commitIn(x.Y)
	case *ast.ParenExpr:
		return fd.commitIn(x.X)
	case *ast.CallExpr:
		if c, ok := fd.asDBCall(x); ok && c.kind == kindTx && c.method == "Commit" {
			return c, true
		}
	}
	return dbCall{}, false
}

func findIgnoreCommitError(fd *finder, n ast.Node, stack []ast.Node) {
	switch x := n.(type) {
	case *ast.IfStmt:
		// if err := tx.Commit(); err != nil {...}  or  if tx.Commit() != nil {...}
		if x.Else != nil {
			return
		}
		c, ok := dbCall{}, false
		if x.Init != nil {
			c, ok = fd.commitIn(x.Init)
		} else {
			c, ok = fd.commitIn(x.Cond)
		}
		if ok {
			fd.add(c.call.Pos(), fd.replace(x, "_ = "+fd.text(c.call)))
		}
	case *ast.ReturnStmt:
		// return tx.Commit(ctx)
		if len(x.Results) != 1 {
			return
		}
		if c, ok := fd.commitIn(x.Results[0]); ok && x.Results[0] == c.call {
			fd.add(c.call.Pos(), fd.replace(x, "_ = "+fd.text(c.call)+"; return nil"))
		}
	case *ast.AssignStmt:
		// err = tx.Commit(ctx), outside an if's init
		if len(x.Lhs) != 1 || len(x.Rhs) != 1 || allBlank(x.Lhs) || len(stack) == 0 {
			return
		}
		if ifs, ok := stack[len(stack)-1].(*ast.IfStmt); ok && ifs.Init == x {
			return
		}
		if c, ok := fd.commitIn(x.Rhs[0]); ok && x.Rhs[0] == c.call {
			fd.add(c.call.Pos(), fd.replace(x, "_ = "+fd.text(c.call)+"; "+fd.text(x.Lhs[0])+" "+x.Tok.String()+" error(nil)"))
		}
	}
}

// findCallBeforeCommit: in a block, a commit checked by an if that returns, then a call
// statement: the call moves to before the commit.
func findCallBeforeCommit(fd *finder, n ast.Node, _ []ast.Node) {
	block, ok := n.(*ast.BlockStmt)
	if !ok {
		return
	}
	l := block.List
	for i := range l {
		after := -1
		switch x := l[i].(type) {
		case *ast.IfStmt:
			_, inInit := fd.commitIn(x.Init)
			_, inCond := fd.commitIn(x.Cond)
			if x.Init == nil {
				inInit = false
			}
			if (inInit || inCond) && x.Else == nil && returns(x.Body) {
				after = i + 1
			}
		case *ast.AssignStmt:
			if _, ok := fd.commitIn(x); ok && i+1 < len(l) {
				if ifs, ok := l[i+1].(*ast.IfStmt); ok && ifs.Init == nil && fd.testsErr(ifs.Cond) && returns(ifs.Body) {
					after = i + 2
				}
			}
		}
		if after < 0 || after >= len(l) {
			continue
		}
		var call *ast.CallExpr
		switch s := l[after].(type) {
		case *ast.ExprStmt:
			call, _ = s.X.(*ast.CallExpr)
		case *ast.GoStmt:
			call = s.Call
		}
		if call == nil {
			continue
		}
		if _, ok := fd.commitIn(call); ok {
			continue
		}
		moved := string(fd.src[fd.lineStart(l[after].Pos()):fd.lineEnd(l[after].End())])
		fd.add(l[after].Pos(),
			edit{start: fd.lineStart(l[i].Pos()), end: fd.lineStart(l[i].Pos()), text: moved},
			edit{start: fd.lineStart(l[after].Pos()), end: fd.lineEnd(l[after].End())},
		)
	}
}

// returns reports whether a block ends in a return.
func returns(b *ast.BlockStmt) bool {
	if b == nil || len(b.List) == 0 {
		return false
	}
	_, ok := b.List[len(b.List)-1].(*ast.ReturnStmt)
	return ok
}

func findRowsClose(fd *finder, n ast.Node, stack []ast.Node) {
	fd.dropCall(n, stack, kindRows, "Close")
}

func findConnRelease(fd *finder, n ast.Node, stack []ast.Node) {
	fd.dropCall(n, stack, kindConn, "Close")
	fd.dropCall(n, stack, kindConn, "Release")
}

func findStmtClose(fd *finder, n ast.Node, stack []ast.Node) {
	fd.dropCall(n, stack, kindStmt, "Close")
}

func (fd *finder) dropCall(n ast.Node, stack []ast.Node, k kind, method string) {
	c, ok := fd.asDBCall(n)
	if !ok || c.kind != k || c.method != method {
		return
	}
	if e, ok := fd.neutralize(c, stack); ok {
		fd.add(c.call.Pos(), e)
	}
}

// findRowsErrCheck: if err := rows.Err(); err != nil {...} or if rows.Err() != nil {...},
// without an else, becomes _ = rows.Err().
func findRowsErrCheck(fd *finder, n ast.Node, _ []ast.Node) {
	ifs, ok := n.(*ast.IfStmt)
	if !ok || ifs.Else != nil {
		return
	}
	var in ast.Node = ifs.Cond
	if as, ok := ifs.Init.(*ast.AssignStmt); ok && len(as.Rhs) == 1 {
		in = as.Rhs[0]
	}
	var c dbCall
	ast.Inspect(in, func(n ast.Node) bool {
		if x, ok := fd.asDBCall(n); ok && x.kind == kindRows && x.method == "Err" && c.call == nil {
			c = x
		}
		return c.call == nil
	})
	if c.call != nil {
		fd.add(c.call.Pos(), fd.replace(ifs, "_ = "+fd.text(c.call)))
	}
}

// isContextType reports whether t is context.Context.
func isContextType(t types.Type) bool { return isNamed(t, "context", "Context") }

func findContextBackground(fd *finder, n ast.Node, stack []ast.Node) {
	c, ok := fd.asDBCall(n)
	if !ok || c.sig == nil || c.sig.Params().Len() == 0 || len(c.call.Args) == 0 || c.kind == kindRows {
		return
	}
	switch c.method {
	case "Commit", "Rollback", "Close", "Release":
		return // ending a session on a fresh context is often right: a cancelled one would not end it
	}
	if !isContextType(c.sig.Params().At(0).Type()) {
		return
	}
	ctxName := fd.contextName()
	if ctxName == "" {
		return
	}
	arg := c.call.Args[0]
	if call, ok := arg.(*ast.CallExpr); ok {
		if sel, ok := call.Fun.(*ast.SelectorExpr); ok && (sel.Sel.Name == "Background" || sel.Sel.Name == "TODO") {
			return
		}
	}
	repl := ctxName + ".WithoutCancel(" + fd.text(arg) + ")"
	if id, ok := arg.(*ast.Ident); ok && fd.isParam(id, stack) {
		repl = ctxName + ".Background()"
	}
	fd.add(arg.Pos(), fd.replace(arg, repl))
}

// isParam reports whether id names a parameter of a function around it: replacing a use of
// a parameter never leaves a variable unused.
func (fd *finder) isParam(id *ast.Ident, stack []ast.Node) bool {
	obj := fd.info.Uses[id]
	if obj == nil {
		return false
	}
	for _, n := range stack {
		var ft *ast.FuncType
		switch f := n.(type) {
		case *ast.FuncDecl:
			ft = f.Type
		case *ast.FuncLit:
			ft = f.Type
		default:
			continue
		}
		for _, field := range ft.Params.List {
			for _, name := range field.Names {
				if fd.info.Defs[name] == obj {
					return true
				}
			}
		}
	}
	return false
}

func findTxCallOnPool(fd *finder, n ast.Node, _ []ast.Node) {
	c, ok := fd.asDBCall(n)
	if !ok || c.kind != kindTx || c.sig == nil {
		return
	}
	switch c.method {
	case "Commit", "Rollback", "Stmt", "StmtContext", "Conn", "Begin", "BeginTx":
		return
	}
	pool, pt := fd.poolInScope(c.call.Pos())
	if pool == "" {
		return
	}
	obj, _, _ := types.LookupFieldOrMethod(pt, true, fd.pkg.Types, c.method)
	m, ok := obj.(*types.Func)
	if !ok || !types.Identical(m.Type().(*types.Signature).Params(), c.sig.Params()) {
		return
	}
	fd.add(c.recv.Pos(), fd.replace(c.recv, pool))
}

func findTxArgToPool(fd *finder, n ast.Node, _ []ast.Node) {
	call, ok := n.(*ast.CallExpr)
	if !ok {
		return
	}
	sig, ok := fd.info.TypeOf(call.Fun).(*types.Signature)
	if !ok {
		return
	}
	for i, arg := range call.Args {
		if fd.kindOf(fd.info.TypeOf(arg)) != kindTx {
			continue
		}
		var pt types.Type
		switch {
		case i < sig.Params().Len()-1 || (i < sig.Params().Len() && !sig.Variadic()):
			pt = sig.Params().At(i).Type()
		default:
			continue
		}
		it, ok := pt.Underlying().(*types.Interface)
		if !ok || it.NumMethods() == 0 {
			continue
		}
		pool, poolT := fd.poolInScope(call.Pos())
		if pool == "" || !types.AssignableTo(poolT, pt) {
			continue
		}
		fd.add(arg.Pos(), fd.replace(arg, pool))
	}
}

var (
	forUpdateRE = regexp.MustCompile(`(?i)\s+FOR\s+(NO\s+KEY\s+UPDATE|UPDATE|KEY\s+SHARE|SHARE)(\s+OF\s+[\w.]+(\s*,\s*[\w.]+)*)?(\s+(NOWAIT|SKIP\s+LOCKED))?`)
	setLocalRE  = regexp.MustCompile(`(?i)\bSET\s+LOCAL\b`)
)

func findForUpdate(fd *finder, n ast.Node, _ []ast.Node) {
	fd.mutateSQL(n, forUpdateRE, func(string) string { return "" })
}

func findSetLocal(fd *finder, n ast.Node, _ []ast.Node) {
	fd.mutateSQL(n, setLocalRE, func(m string) string { return m[:3] })
}

// mutateSQL runs once per file (at its root): a constant may be declared in one file and
// passed to a database call in another, so every call of the package is looked at, and the
// literals of this file are mutated.
func (fd *finder) mutateSQL(n ast.Node, re *regexp.Regexp, repl func(string) string) {
	if n != fd.file {
		return
	}
	for _, f := range fd.pkg.Syntax {
		ast.Inspect(f, func(n ast.Node) bool {
			fd.mutateSQLOf(n, re, repl)
			return true
		})
	}
}

// mutateSQLOf rewrites the first match of re in each string literal of this file that makes
// up the SQL of a database call (literal, constant of the package, concatenation of those).
func (fd *finder) mutateSQLOf(n ast.Node, re *regexp.Regexp, repl func(string) string) {
	c, ok := fd.asDBCall(n)
	if !ok || c.sig == nil {
		return
	}
	params := c.sig.Params()
	for i, arg := range c.call.Args {
		if i >= params.Len() || (c.sig.Variadic() && i >= params.Len()-1) {
			return
		}
		if b, ok := params.At(i).Type().(*types.Basic); !ok || b.Kind() != types.String {
			continue
		}
		for _, lit := range fd.stringLits(arg, 0) {
			if lit.Pos() < fd.file.FileStart || lit.Pos() >= fd.file.FileEnd {
				continue
			}
			text := fd.text(lit)
			loc := re.FindStringIndex(text)
			if loc == nil {
				continue
			}
			start := fd.off(lit.Pos())
			fd.add(lit.Pos()+token.Pos(loc[0]), edit{start: start + loc[0], end: start + loc[1], text: repl(text[loc[0]:loc[1]])})
		}
		return // the SQL is the first string parameter
	}
}

// stringLits returns the string literals an expression is made of: itself, the parts of a
// concatenation, or the value of a constant declared in this package.
func (fd *finder) stringLits(e ast.Expr, depth int) []*ast.BasicLit {
	if depth > 8 {
		return nil
	}
	switch x := ast.Unparen(e).(type) {
	case *ast.BasicLit:
		if x.Kind == token.STRING {
			return []*ast.BasicLit{x}
		}
	case *ast.BinaryExpr:
		if x.Op == token.ADD {
			return append(fd.stringLits(x.X, depth+1), fd.stringLits(x.Y, depth+1)...)
		}
	case *ast.Ident:
		obj, ok := fd.info.Uses[x].(*types.Const)
		if !ok || obj.Pkg() != fd.pkg.Types {
			return nil
		}
		if v := fd.constValue(obj); v != nil {
			return fd.stringLits(v, depth+1)
		}
	}
	return nil
}

// constValue returns the expression a constant of this package is declared with.
func (fd *finder) constValue(obj *types.Const) ast.Expr {
	var out ast.Expr
	for _, f := range fd.pkg.Syntax {
		if f.FileStart <= obj.Pos() && obj.Pos() < f.FileEnd {
			fd.inspectConst(f, obj, &out)
		}
	}
	return out
}

func (fd *finder) inspectConst(f *ast.File, obj *types.Const, out *ast.Expr) {
	ast.Inspect(f, func(n ast.Node) bool {
		vs, ok := n.(*ast.ValueSpec)
		if !ok || *out != nil {
			return *out == nil
		}
		for i, name := range vs.Names {
			if fd.info.Defs[name] == obj && i < len(vs.Values) {
				*out = vs.Values[i]
			}
		}
		return false
	})
}

func findDeferCancel(fd *finder, n ast.Node, _ []ast.Node) {
	d, ok := n.(*ast.DeferStmt)
	if !ok || len(d.Call.Args) != 0 {
		return
	}
	t := fd.info.TypeOf(d.Call.Fun)
	if !isNamed(t, "context", "CancelFunc") && !isNamed(t, "context", "CancelCauseFunc") {
		return
	}
	fd.add(d.Pos(), fd.replace(d, "_ = "+strings.TrimSpace(fd.text(d.Call.Fun))))
}
