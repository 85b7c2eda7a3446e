package handlers

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
)

// The SQL of every repository call. Tests match these strings exactly.
const (
	threadColumns = `id::text, user_id, title, metadata, message_count, created_at, updated_at`

	sqlListThreads = `SELECT ` + threadColumns + ` FROM threads
WHERE user_id = $1 AND archived_at IS NULL
ORDER BY created_at DESC, id DESC LIMIT $2 OFFSET $3`

	sqlInsertThread = `INSERT INTO threads (user_id, title, metadata) VALUES ($1, $2, $3::jsonb)
RETURNING ` + threadColumns

	sqlGetThread = `SELECT ` + threadColumns + ` FROM threads
WHERE id = $1 AND user_id = $2 AND archived_at IS NULL`

	sqlCountMessages = `SELECT count(*) FROM messages WHERE thread_id = $1`

	// The metadata patch is merged in SQL, so concurrent patches never lose a
	// key; the owner key is stripped from the patch.
	sqlUpdateThread = `UPDATE threads
SET title = COALESCE($3, title), metadata = metadata || ($4::jsonb - 'user_id'), updated_at = now()
WHERE id = $1 AND user_id = $2 AND archived_at IS NULL
RETURNING ` + threadColumns

	sqlArchiveThread = `UPDATE threads SET archived_at = now(), updated_at = now()
WHERE id = $1 AND user_id = $2 AND archived_at IS NULL`

	sqlFirstUserMessage = `SELECT content FROM messages WHERE thread_id = $1 AND role = 'user' ORDER BY seq LIMIT 1`

	sqlRenameThread = `UPDATE threads SET title = $3, updated_at = now()
WHERE id = $1 AND user_id = $2 AND archived_at IS NULL
RETURNING ` + threadColumns

	sqlThreadExists = `SELECT 1 FROM threads WHERE id = $1 AND user_id = $2 AND archived_at IS NULL`

	messageColumns = `id::text, thread_id::text, role, content, COALESCE(client_message_id, ''), metadata, seq, created_at`

	sqlListMessages = `SELECT ` + messageColumns + ` FROM messages
WHERE thread_id = $1 ORDER BY seq LIMIT $2 OFFSET $3`

	// Locks the thread row: sends to one thread, and a delete, serialize here.
	sqlLockThread = `SELECT message_count FROM threads
WHERE id = $1 AND user_id = $2 AND archived_at IS NULL FOR UPDATE`

	sqlMessageByClientID = `SELECT ` + messageColumns + ` FROM messages
WHERE thread_id = $1 AND client_message_id = $2`

	sqlNextSeq = `UPDATE threads SET message_count = message_count + 1, updated_at = now()
WHERE id = $1 RETURNING message_count`

	sqlInsertMessage = `INSERT INTO messages (thread_id, role, content, client_message_id, metadata, seq)
VALUES ($1, $2, $3, NULLIF($4, ''), $5::jsonb, $6)
RETURNING ` + messageColumns
)

type scanner interface{ Scan(dest ...any) error }

func scanThread(r scanner) (Thread, error) {
	var t Thread
	var meta []byte
	var count int64
	if err := r.Scan(&t.ID, &t.UserID, &t.Title, &meta, &count, &t.CreatedAt, &t.UpdatedAt); err != nil {
		return Thread{}, err
	}
	t.MessageCount = int(count)
	if err := decodeMetadata(meta, &t.Metadata); err != nil {
		return Thread{}, err
	}
	return t, nil
}

func scanMessage(r scanner) (Message, error) {
	var m Message
	var meta []byte
	if err := r.Scan(&m.ID, &m.ThreadID, &m.Role, &m.Content, &m.ClientMessageID, &meta, &m.Seq, &m.CreatedAt); err != nil {
		return Message{}, err
	}
	if err := decodeMetadata(meta, &m.Metadata); err != nil {
		return Message{}, err
	}
	return m, nil
}

func decodeMetadata(b []byte, dst *map[string]any) error {
	*dst = map[string]any{}
	if len(b) == 0 {
		return nil
	}
	if err := json.Unmarshal(b, dst); err != nil {
		return fmt.Errorf("decode metadata: %w", err)
	}
	if *dst == nil {
		*dst = map[string]any{}
	}
	return nil
}

// notFound maps sql.ErrNoRows to ErrNotFound and names the step.
func stepErr(step string, err error) error {
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return fmt.Errorf("%s: %w", step, ErrNotFound)
	case isConstraint(err):
		return fmt.Errorf("%s: %w: %w", step, ErrConflict, err)
	}
	return fmt.Errorf("%s: %w", step, err)
}

func listThreads(ctx context.Context, q DBTX, userID string, p Page) ([]Thread, error) {
	rows, err := q.QueryContext(ctx, sqlListThreads, userID, p.Limit, p.Offset)
	if err != nil {
		return nil, stepErr("select threads", err)
	}
	defer rows.Close() //sessionsafe:equivalent drop-rows-close rows in a unit of work: database/sql closes them when Next returns false, and when the transaction ends (a scan error ends it)
	out := make([]Thread, 0, min(p.Limit, 16))
	for rows.Next() {
		t, err := scanThread(rows)
		if err != nil {
			return nil, stepErr("select threads: scan", err)
		}
		out = append(out, t)
	}
	if err := rows.Err(); err != nil {
		return nil, stepErr("select threads: rows", err)
	}
	return out, nil
}

func insertThread(ctx context.Context, q DBTX, userID, title string, meta []byte) (Thread, error) {
	t, err := scanThread(q.QueryRowContext(ctx, sqlInsertThread, userID, title, string(meta)))
	if err != nil {
		return Thread{}, stepErr("insert thread", err)
	}
	return t, nil
}

func getThread(ctx context.Context, q DBTX, userID, threadID string) (Thread, error) {
	t, err := scanThread(q.QueryRowContext(ctx, sqlGetThread, threadID, userID))
	if err != nil {
		return Thread{}, stepErr("select thread", err)
	}
	return t, nil
}

func countMessages(ctx context.Context, q DBTX, threadID string) (int, error) {
	var n int64
	if err := q.QueryRowContext(ctx, sqlCountMessages, threadID).Scan(&n); err != nil {
		return 0, stepErr("count messages", err)
	}
	return int(n), nil
}

// nullString passes a nil title as SQL NULL (keep the stored one).
func nullString(s *string) any {
	if s == nil {
		return nil
	}
	return *s
}

func updateThread(ctx context.Context, q DBTX, userID, threadID string, title *string, patch []byte) (Thread, error) {
	t, err := scanThread(q.QueryRowContext(ctx, sqlUpdateThread, threadID, userID, nullString(title), string(patch)))
	if err != nil {
		return Thread{}, stepErr("merge metadata", err)
	}
	return t, nil
}

func archiveThread(ctx context.Context, q DBTX, userID, threadID string) error {
	res, err := q.ExecContext(ctx, sqlArchiveThread, threadID, userID)
	if err != nil {
		return stepErr("archive thread", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return stepErr("archive thread: rows affected", err)
	}
	if n == 0 {
		return fmt.Errorf("archive thread: %w", ErrNotFound)
	}
	return nil
}

func firstUserMessage(ctx context.Context, q DBTX, threadID string) (string, error) {
	var content string
	err := q.QueryRowContext(ctx, sqlFirstUserMessage, threadID).Scan(&content)
	if errors.Is(err, sql.ErrNoRows) {
		return "", fmt.Errorf("first user message: %w", errNoUserMessage)
	}
	if err != nil {
		return "", stepErr("first user message", err)
	}
	return content, nil
}

func renameThread(ctx context.Context, q DBTX, userID, threadID, title string) (Thread, error) {
	t, err := scanThread(q.QueryRowContext(ctx, sqlRenameThread, threadID, userID, title))
	if err != nil {
		return Thread{}, stepErr("rename thread", err)
	}
	return t, nil
}

func threadExists(ctx context.Context, q DBTX, userID, threadID string) error {
	var one int
	if err := q.QueryRowContext(ctx, sqlThreadExists, threadID, userID).Scan(&one); err != nil {
		return stepErr("check thread", err)
	}
	return nil
}

func listMessages(ctx context.Context, q DBTX, threadID string, p Page) ([]Message, error) {
	rows, err := q.QueryContext(ctx, sqlListMessages, threadID, p.Limit, p.Offset)
	if err != nil {
		return nil, stepErr("list messages", err)
	}
	defer rows.Close() //sessionsafe:equivalent drop-rows-close rows in a unit of work: database/sql closes them when Next returns false, and when the transaction ends (a scan error ends it)
	out := make([]Message, 0, min(p.Limit, 16))
	for rows.Next() {
		m, err := scanMessage(rows)
		if err != nil {
			return nil, stepErr("list messages: scan", err)
		}
		out = append(out, m)
	}
	if err := rows.Err(); err != nil {
		return nil, stepErr("list messages: rows", err)
	}
	return out, nil
}

func lockThread(ctx context.Context, q DBTX, userID, threadID string) error {
	var n int64
	if err := q.QueryRowContext(ctx, sqlLockThread, threadID, userID).Scan(&n); err != nil {
		return stepErr("lock thread", err)
	}
	return nil
}

// messageByClientID returns the message sent earlier with this client id, if any.
func messageByClientID(ctx context.Context, q DBTX, threadID, clientID string) (Message, bool, error) {
	m, err := scanMessage(q.QueryRowContext(ctx, sqlMessageByClientID, threadID, clientID))
	if errors.Is(err, sql.ErrNoRows) {
		return Message{}, false, nil
	}
	if err != nil {
		return Message{}, false, stepErr("find message by client id", err)
	}
	return m, true, nil
}

func nextSeq(ctx context.Context, q DBTX, threadID string) (int64, error) {
	var seq int64
	if err := q.QueryRowContext(ctx, sqlNextSeq, threadID).Scan(&seq); err != nil {
		return 0, stepErr("next seq", err)
	}
	return seq, nil
}

func insertMessage(ctx context.Context, q DBTX, threadID string, in SendMessageInput, meta []byte, seq int64) (Message, error) {
	m, err := scanMessage(q.QueryRowContext(ctx, sqlInsertMessage, threadID, in.Role, in.Content, in.ClientMessageID, string(meta), seq))
	if err != nil {
		return Message{}, stepErr("insert message", err)
	}
	return m, nil
}
