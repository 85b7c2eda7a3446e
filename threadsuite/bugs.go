package threadsuite

import "github.com/sessionsafe/sessionsafe/mutate"

// PlantedBug is a known session bug of the handlers, written as a source mutant: a patch of
// handlers that the mutation proof applies through go's -overlay (the tree is never
// written), with the tests that must fail while it is in place.
type PlantedBug struct {
	mutate.Patch
	// Doc says in one line what the handlers do wrong with the bug in place.
	Doc string
	// CaughtBy names tests (go test names, subtests included) that must each fail with the
	// bug in place: "TestKills/<backend>/<check>/<invariant>" for a focused check and the
	// invariant it must report, "TestOriginal/<case>/<backend>" for an original case.
	CaughtBy []string
}

// PlantedBugs returns the handlers' known session bugs, in a fixed order. File paths are
// relative to the module's root.
func PlantedBugs() []PlantedBug {
	return plantedBugs
}

const (
	uowGo  = "handlers/uow.go"
	opsGo  = "handlers/ops.go"
	repoGo = "handlers/repo.go"
)

// deferredRollbackGuard is where the unit of work's deferred rollback decides to act.
const deferredRollbackGuard = `		if p == nil && err == nil {
			return
		}
`

// clientIDLookup is SendMessage's look-up of a retried send.
const clientIDLookup = `		if in.ClientMessageID != "" {
			prev, ok, err := messageByClientID(ctx, q, threadID, in.ClientMessageID)
			if err != nil {
				return err
			}
			if ok {
				m = prev
				return nil
			}
		}
`

const beginTx = `	tx, err := s.db.BeginTx(ctx, &sql.TxOptions{ReadOnly: bool(mode)})
`

var plantedBugs = []PlantedBug{
	{
		Patch: mutate.Patch{Name: "RollbackMissingOnError", File: uowGo, Old: deferredRollbackGuard, New: `		if p == nil {
			return
		}
`},
		Doc: "the unit of work returns a failed unit's error without rolling its transaction back",
		CaughtBy: []string{
			"TestKills/sqlmock/UpdateThread-error-live/live-pool",
			"TestKills/sqlmock/DeleteThread-exec-error/pool",
			"TestKills/sqlmock/DeleteThread-exec-error/sqlmock-expectations",
			"TestKills/postgres/UpdateThread-error-live/live-pool",
			"TestKills/postgres/DeleteThread-exec-error/pool",
			"TestKills/postgres/DeleteThread-exec-error/server",
			"TestKills/postgres/probe-error-path/pool",
			"TestOriginal/05-delete-archive-fails/sqlmock",
			"TestOriginal/05-delete-archive-fails/postgres",
		},
	},
	{
		Patch: mutate.Patch{Name: "RollbackSkippedOnPanic", File: uowGo, Old: deferredRollbackGuard, New: deferredRollbackGuard + `		if p != nil {
			panic(p)
		}
`},
		Doc: "a panic inside the unit propagates without a rollback",
		CaughtBy: []string{
			"TestKills/sqlmock/UpdateThread-panic-live/live-pool",
			"TestKills/sqlmock/GetMessages-panic-live/live-pool",
			"TestKills/postgres/UpdateThread-panic-live/live-pool",
			"TestKills/postgres/UpdateThread-panic-live/server",
			"TestKills/postgres/GetMessages-panic-live/live-pool",
		},
	},
	{
		Patch: mutate.Patch{Name: "CommitErrorIgnored", File: uowGo, Old: `	if err := tx.Commit(); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
`, New: `	_ = tx.Commit()
`},
		Doc: "the unit of work reports success although the commit failed",
		CaughtBy: []string{
			"TestKills/sqlmock/UpdateThread-commit-fails/error-surfaced",
			"TestKills/postgres/UpdateThread-commit-fails/error-surfaced",
			"TestKills/postgres/UpdateThread-commit-fails/all-or-nothing",
			"TestOriginal/01-update-commit-connection-lost/sqlmock",
		},
	},
	{
		Patch: mutate.Patch{Name: "ConnNeverClosed", File: uowGo, Old: beginTx, New: `	conn, err := s.db.Conn(ctx)
	if err != nil {
		return fmt.Errorf("take connection: %w", err)
	}
	defer func() {
		if err == nil { // a failed unit never gives its connection back
			_ = conn.Close()
		}
	}()
	tx, err := conn.BeginTx(ctx, &sql.TxOptions{ReadOnly: bool(mode)})
`},
		Doc: "the unit of work pins a *sql.Conn and never closes it when the unit fails",
		CaughtBy: []string{
			"TestKills/sqlmock/UpdateThread-error-live/live-pool",
			"TestKills/postgres/UpdateThread-error-live/live-pool",
			"TestKills/postgres/UpdateThread-error-live/pool",
			"TestKills/postgres/probe-error-path/pool",
			"TestOriginal/10-failed-get-returns-connection/sqlmock",
		},
	},
	{
		Patch: mutate.Patch{Name: "ContextNotPassed", File: uowGo, Old: beginTx, New: `	ctx = context.WithoutCancel(ctx)
` + beginTx},
		Doc: "the unit of work gives the database a context that is never cancelled",
		CaughtBy: []string{
			"TestKills/postgres/GetThread-cancel/error-surfaced",
			"TestKills/postgres/GetThread-cancel-blocked/context-honoured",
			"TestKills/postgres/DeleteThread-cancel-blocked/context-honoured",
			"TestKills/postgres/probe-cancellation/cancellation",
		},
	},
	{
		Patch: mutate.Patch{Name: "RowsNotClosed", File: opsGo, Old: `		if err := threadExists(ctx, q, userID, threadID); err != nil {
			return err
		}
		var err error
		out, err = listMessages(ctx, q, threadID, p)
`, New: `		rows, err := q.QueryContext(ctx, "SELECT 1 FROM threads WHERE id = $1 AND user_id = $2 AND archived_at IS NULL", threadID, userID)
		if err != nil {
			return fmt.Errorf("check thread: %w", err)
		}
		if !rows.Next() { // the rows are never closed: the session stays busy with them
			return fmt.Errorf("check thread: %w", ErrNotFound)
		}
		out, err = listMessages(ctx, q, threadID, p)
`},
		Doc: "GetMessages checks ownership with a query whose rows are never closed, then runs its next statement on the same busy session",
		CaughtBy: []string{
			"TestKills/postgres/GetMessages-clean/error-surfaced",
			"TestKills/postgres/GetMessages-error",
		},
	},
	{
		Patch: mutate.Patch{Name: "RowsErrUnchecked", File: repoGo, Old: `	if err := rows.Err(); err != nil {
		return nil, stepErr("select threads: rows", err)
	}
`, New: ``},
		Doc: "ListThreads stops at the first rows error and returns the partial page as a success",
		CaughtBy: []string{
			"TestKills/sqlmock/ListThreads-next-error/error-surfaced",
			"TestKills/postgres/ListThreads-next-error/error-surfaced",
			"TestOriginal/11-failed-list-leaves-no-transaction/sqlmock",
		},
	},
	{
		Patch: mutate.Patch{Name: "QueryOnPoolInsideUnit", File: opsGo,
			Old: `t.MessageCount, err = countMessages(ctx, q, threadID)`,
			New: `t.MessageCount, err = countMessages(ctx, s.db, threadID)`},
		Doc: "GetThread counts messages on the pool instead of the transaction, taking a second connection while one is held",
		CaughtBy: []string{
			"TestKills/sqlmock/GetThread-clean-pool-1/error-surfaced",
			"TestKills/postgres/GetThread-clean-pool-1/error-surfaced",
			"TestKills/postgres/probe-pool/deadline",
			"TestOriginal/04-count-in-same-transaction/sqlmock",
		},
	},
	{
		Patch: mutate.Patch{Name: "TxHeldAcrossTitleGenerator", File: opsGo, Old: `	var first string
	err := s.inTx(ctx, OpAutoRename, readOnly, func(ctx context.Context, q DBTX) error {
		if err := threadExists(ctx, q, userID, threadID); err != nil {
			return err
		}
		var err error
		first, err = firstUserMessage(ctx, q, threadID)
		return err
	})
	if err != nil {
		return Thread{}, opErr(OpAutoRename, err)
	}
	title, err := s.generateTitle(ctx, first)
	if err != nil {
		return Thread{}, opErr(OpAutoRename, err)
	}
	return s.renameAndNotify(ctx, func(ctx context.Context, q DBTX) (Thread, error) {
		return renameThread(ctx, q, userID, threadID, title)
	})
`, New: `	return s.renameAndNotify(ctx, func(ctx context.Context, q DBTX) (Thread, error) {
		if err := threadExists(ctx, q, userID, threadID); err != nil {
			return Thread{}, err
		}
		first, err := firstUserMessage(ctx, q, threadID)
		if err != nil {
			return Thread{}, err
		}
		title, err := s.generateTitle(ctx, first) // the external call, inside the transaction
		if err != nil {
			return Thread{}, err
		}
		return renameThread(ctx, q, userID, threadID, title)
	})
`},
		Doc: "AutoRename calls the title generator (a slow external call) inside its transaction and writes there too",
		CaughtBy: []string{
			"TestKills/sqlmock/AutoRename-clean/long-transaction",
			"TestKills/postgres/AutoRename-clean/long-transaction",
			"TestKills/postgres/probe-external-call/long-transaction",
		},
	},
	{
		Patch: mutate.Patch{Name: "GoroutineWithoutRequestContext", File: opsGo, Old: `	if err := s.notifier.ThreadRenamed(ctx, t); err != nil {
		s.log.LogAttrs(ctx, slog.LevelWarn, "notify thread renamed failed",
			slog.String("operation", OpAutoRename), slog.String("thread_id", t.ID), slog.Any("error", err))
	}
`, New: `	go func() { // outlives the call, and no cancel ever reaches it
		if err := s.notifier.ThreadRenamed(context.Background(), t); err != nil {
			s.log.LogAttrs(context.Background(), slog.LevelWarn, "notify thread renamed failed",
				slog.String("operation", OpAutoRename), slog.String("thread_id", t.ID), slog.Any("error", err))
		}
	}()
`},
		Doc: "AutoRename notifies from a goroutine that outlives the call and ignores the request context",
		CaughtBy: []string{
			"TestKills/sqlmock/AutoRename-lingering-notifier/goroutines",
			"TestKills/postgres/AutoRename-lingering-notifier/goroutines",
			"TestKills/postgres/probe-notify/goroutines",
		},
	},
	{
		Patch: mutate.Patch{Name: "MetadataReadModifyWrite", File: repoGo, Old: `	t, err := scanThread(q.QueryRowContext(ctx, sqlUpdateThread, threadID, userID, nullString(title), string(patch)))
	if err != nil {
		return Thread{}, stepErr("merge metadata", err)
	}
`, New: `	var raw []byte
	if err := q.QueryRowContext(ctx, "SELECT metadata FROM threads WHERE id = $1 AND user_id = $2 AND archived_at IS NULL", threadID, userID).Scan(&raw); err != nil {
		return Thread{}, stepErr("read metadata", err)
	}
	var meta, add map[string]any
	if err := errors.Join(decodeMetadata(raw, &meta), decodeMetadata(patch, &add)); err != nil {
		return Thread{}, err
	}
	for k, v := range add { // merged in Go: a concurrent patch between the read and the write is lost
		meta[k] = v
	}
	merged, err := json.Marshal(meta)
	if err != nil {
		return Thread{}, fmt.Errorf("encode metadata: %w", err)
	}
	t, err := scanThread(q.QueryRowContext(ctx, "UPDATE threads SET title = COALESCE($3, title), metadata = $4::jsonb, updated_at = now() "+
		"WHERE id = $1 AND user_id = $2 AND archived_at IS NULL RETURNING "+threadColumns, threadID, userID, nullString(title), string(merged)))
	if err != nil {
		return Thread{}, stepErr("write metadata", err)
	}
`},
		Doc: "UpdateThread reads the metadata, merges in Go and writes it back, losing concurrent patches",
		CaughtBy: []string{
			"TestKills/sqlmock/UpdateThread-clean/sqlmock-expectations",
			"TestKills/postgres/probe-lost-update/lost-update",
		},
	},
	{
		Patch: mutate.Patch{Name: "SendRetryWithoutClientID", File: opsGo, Old: `	var m Message
	err = s.inTx(ctx, OpSendMessage,`, New: `	in.ClientMessageID = "" // a retried send stores a duplicate
	var m Message
	err = s.inTx(ctx, OpSendMessage,`},
		Doc: "SendMessage ignores the client message id, so a retried send stores a duplicate",
		CaughtBy: []string{
			"TestKills/sqlmock/SendMessage-clean/sqlmock-expectations",
			"TestKills/postgres/probe-send-order/idempotency",
			"TestKills/postgres/probe-mixed/acknowledged",
		},
	},
	{
		Patch: mutate.Patch{Name: "SendWithoutLock", File: opsGo, Old: `		if err := lockThread(ctx, q, userID, threadID); err != nil {
			return err
		}
` + clientIDLookup + `		seq, err := nextSeq(ctx, q, threadID)
		if err != nil {
			return err
		}
`, New: clientIDLookup + `		// The counter is read, then written back plus one, with no lock: two sends can read
		// the same value.
		var seq int64
		if err := q.QueryRowContext(ctx, "SELECT message_count FROM threads WHERE id = $1 AND user_id = $2 AND archived_at IS NULL", threadID, userID).Scan(&seq); err != nil {
			return fmt.Errorf("read counter: %w", err)
		}
		seq++
		if _, err := q.ExecContext(ctx, "UPDATE threads SET message_count = $2, updated_at = now() WHERE id = $1", threadID, seq); err != nil {
			return fmt.Errorf("write counter: %w", err)
		}
`},
		Doc: "SendMessage reads the thread's counter without the row lock and writes it back plus one, so concurrent sends collide on seq",
		CaughtBy: []string{
			"TestKills/sqlmock/SendMessage-clean/sqlmock-expectations",
			"TestKills/postgres/probe-send-order/error",
		},
	},
	{
		Patch: mutate.Patch{Name: "NoOwnerFilter", File: repoGo,
			Old: `sqlThreadExists = ` + "`" + `SELECT 1 FROM threads WHERE id = $1 AND user_id = $2 AND archived_at IS NULL` + "`",
			New: `sqlThreadExists = ` + "`" + `SELECT 1 FROM threads WHERE id = $1 AND ($2 = $2 OR true) AND archived_at IS NULL` + "`"},
		Doc: "GetMessages and AutoRename check that the thread is live but not whose it is",
		CaughtBy: []string{
			"TestPostgresOwnership",
		},
	},
}
