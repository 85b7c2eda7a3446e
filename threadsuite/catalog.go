package threadsuite

import (
	"bytes"
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/sessionsafe/sessionsafe/handlers"
	"github.com/sessionsafe/sessionsafe/scenarios"
)

// Operation names of the thread catalog, as used in case names and golden files.
const (
	OpListThreads  = "ListThreads"
	OpCreateThread = "CreateThread"
	OpGetThread    = "GetThread"
	OpUpdateThread = "UpdateThread"
	OpDeleteThread = "DeleteThread"
	OpAutoRename   = "AutoRename"
	OpGetMessages  = "GetMessages"
	OpSendMessage  = "SendMessage"
)

// ThreadFixture is the fresh state of one catalog case: a new user owning two
// live threads, the newer (ThreadID) with two messages, a user question then
// an assistant answer.
type ThreadFixture struct {
	UserID   string
	ThreadID string
}

// The fixture's content, shared by Setup and the HTTP catalog.
const (
	fixtureTitle    = "Fixture thread"
	fixtureQuestion = "How do I close rows in Go?"
)

// mockFixture is the fixture on sqlmock: no database, placeholder ids that
// pass validation (sqlmock matches any argument; the rows come from the
// golden trace).
var mockFixture = ThreadFixture{UserID: "mock-user", ThreadID: "00000000-0000-4000-8000-000000000001"}

// setupThreads creates a fresh user with two threads in one statement: the
// older one untouched, the newer one with two messages.
func setupThreads(ctx context.Context, db *sql.DB) (scenarios.Fixture, error) {
	if db == nil {
		return mockFixture, nil
	}
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		return nil, fmt.Errorf("threadsuite: setup threads: user id: %w", err)
	}
	h := hex.EncodeToString(b[:])
	// a UUID-shaped user id, so that golden traces normalise it like the ids
	fx := ThreadFixture{UserID: "u-" + h[:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]}
	const q = `
WITH older AS (
  INSERT INTO threads (user_id, title, metadata, created_at, updated_at)
  VALUES ($1, 'Older thread', jsonb_build_object('user_id', $1::text), now() - interval '1 hour', now() - interval '1 hour')
), t AS (
  INSERT INTO threads (user_id, title, metadata, message_count)
  VALUES ($1, '` + fixtureTitle + `', jsonb_build_object('user_id', $1::text, 'topic', 'databases'), 2)
  RETURNING id
), m AS (
  INSERT INTO messages (thread_id, role, content, seq)
  SELECT t.id, v.role, v.content, v.seq FROM t,
    (VALUES ('user', '` + fixtureQuestion + `', 1), ('assistant', 'Defer rows.Close and check rows.Err.', 2)) AS v(role, content, seq)
)
SELECT id::text FROM t`
	if err := db.QueryRowContext(ctx, q, fx.UserID).Scan(&fx.ThreadID); err != nil {
		return nil, fmt.Errorf("threadsuite: setup threads: %w", err)
	}
	return fx, nil
}

// threadState reads back, normalised, everything the catalog's operations
// can change for the fixture's user: each thread's title, metadata, counter,
// whether it is archived and whether it was touched since it was created,
// and each message.
func threadState(ctx context.Context, db *sql.DB, fx scenarios.Fixture) (string, error) {
	f := fx.(ThreadFixture)
	const q = `
SELECT 'thread ' || (row_number() OVER (ORDER BY t.created_at, t.title))::text
       || ' title=' || quote_literal(t.title) || ' metadata=' || (t.metadata - 'user_id')::text
       || ' owner_key=' || coalesce(t.metadata->>'user_id' = t.user_id, false)::text
       || ' count=' || t.message_count::text
       || ' archived=' || (t.archived_at IS NOT NULL)::text
       || ' touched=' || (t.updated_at <> t.created_at)::text
       || coalesce((SELECT string_agg(' | msg ' || m.seq::text || ' ' || m.role || ' ' || quote_literal(m.content)
                               || ' client=' || coalesce(m.client_message_id, '-') || ' metadata=' || m.metadata::text, '' ORDER BY m.seq)
                    FROM messages m WHERE m.thread_id = t.id), '')
FROM threads t WHERE t.user_id = $1 ORDER BY t.created_at, t.title`
	rows, err := db.QueryContext(ctx, q, f.UserID)
	if err != nil {
		return "", fmt.Errorf("threadsuite: read thread state: %w", err)
	}
	defer rows.Close()
	var b strings.Builder
	for rows.Next() {
		var line string
		if err := rows.Scan(&line); err != nil {
			return "", fmt.Errorf("threadsuite: read thread state: %w", err)
		}
		b.WriteString(line)
		b.WriteByte('\n')
	}
	if err := rows.Err(); err != nil {
		return "", fmt.Errorf("threadsuite: read thread state: %w", err)
	}
	return b.String(), nil
}

// retriesSerialization says what the handlers' unit of work retries:
// serialization failure (40001) and deadlock (40P01).
func retriesSerialization(err error) bool {
	var pg *pgconn.PgError
	return errors.As(err, &pg) && (pg.Code == "40001" || pg.Code == "40P01")
}

// externalTitles is the catalog's title generator: the handlers' default
// (FirstWordsTitle), called through scenarios.External, so that a matrix
// case reports a transaction held open across it.
type externalTitles struct{ g handlers.TitleGenerator }

// GenerateTitle asks the wrapped generator, as an external call.
func (e externalTitles) GenerateTitle(ctx context.Context, first string) (string, error) {
	var title string
	err := scenarios.External(ctx, "title-generator", func(ctx context.Context) error {
		var err error
		title, err = e.g.GenerateTitle(ctx, first)
		return err
	})
	return title, err
}

// withExternalTitles puts the catalog's title generator before opts, which
// may replace it.
func withExternalTitles(opts []handlers.Option) []handlers.Option {
	return append([]handlers.Option{handlers.WithTitleGenerator(externalTitles{handlers.FirstWordsTitle{}})}, opts...)
}

// threadOp builds one catalog operation from the call it makes.
func threadOp(name string, opts []handlers.Option, writes bool,
	call func(ctx context.Context, s *handlers.Service, fx ThreadFixture) error) scenarios.Operation {
	op := scenarios.Operation{
		Name:  name,
		Setup: setupThreads,
		Run: func(ctx context.Context, db *sql.DB, fx scenarios.Fixture) error {
			return call(ctx, handlers.New(db, opts...), fx.(ThreadFixture))
		},
		Retries: retriesSerialization,
	}
	if writes {
		op.State = threadState
	}
	return op
}

// Catalog returns the eight handlers operations as runner Operations, each
// calling handlers.Service directly on the case's instrumented pool; opts are
// passed to handlers.New for every case (e.g. a title generator or a logger).
// The read-only operations have no State: they change nothing. The default
// title generator is called through scenarios.External, so a transaction
// held across it is a finding; a generator given in opts replaces it (wrap
// its calls with scenarios.External to keep that check).
func Catalog(opts ...handlers.Option) []scenarios.Operation {
	opts = withExternalTitles(opts)
	title := "Renamed by the matrix"
	return []scenarios.Operation{
		threadOp(OpListThreads, opts, false, func(ctx context.Context, s *handlers.Service, fx ThreadFixture) error {
			_, err := s.ListThreads(ctx, fx.UserID, handlers.Page{Limit: 10})
			return err
		}),
		threadOp(OpCreateThread, opts, true, func(ctx context.Context, s *handlers.Service, fx ThreadFixture) error {
			_, err := s.CreateThread(ctx, fx.UserID, handlers.CreateThreadInput{
				Title: "Created by the matrix", Metadata: map[string]any{"source": "matrix"}})
			return err
		}),
		threadOp(OpGetThread, opts, false, func(ctx context.Context, s *handlers.Service, fx ThreadFixture) error {
			_, err := s.GetThread(ctx, fx.UserID, fx.ThreadID)
			return err
		}),
		threadOp(OpUpdateThread, opts, true, func(ctx context.Context, s *handlers.Service, fx ThreadFixture) error {
			_, err := s.UpdateThread(ctx, fx.UserID, fx.ThreadID, handlers.UpdateThreadInput{
				Title: &title, Metadata: map[string]any{"color": "blue"}})
			return err
		}),
		threadOp(OpDeleteThread, opts, true, func(ctx context.Context, s *handlers.Service, fx ThreadFixture) error {
			return s.DeleteThread(ctx, fx.UserID, fx.ThreadID)
		}),
		threadOp(OpAutoRename, opts, true, func(ctx context.Context, s *handlers.Service, fx ThreadFixture) error {
			_, err := s.AutoRename(ctx, fx.UserID, fx.ThreadID)
			return err
		}),
		threadOp(OpGetMessages, opts, false, func(ctx context.Context, s *handlers.Service, fx ThreadFixture) error {
			_, err := s.GetMessages(ctx, fx.UserID, fx.ThreadID, handlers.Page{Limit: 10})
			return err
		}),
		threadOp(OpSendMessage, opts, true, func(ctx context.Context, s *handlers.Service, fx ThreadFixture) error {
			_, err := s.SendMessage(ctx, fx.UserID, fx.ThreadID, handlers.SendMessageInput{
				Role: "user", Content: "And how do I check rows.Err?", ClientMessageID: "matrix-1"})
			return err
		}),
	}
}

// HTTPError is what an HTTP catalog operation returns for a response that is
// not a success.
type HTTPError struct {
	Status int
	Body   string
}

// Error returns the status and the body.
func (e *HTTPError) Error() string {
	return fmt.Sprintf("threadsuite: http status %d: %s", e.Status, strings.TrimSpace(e.Body))
}

// httpOp builds one catalog operation that sends one request to
// Service.Handler() with the case's context as the request's.
func httpOp(name string, opts []handlers.Option, writes bool, method, path string, body any) scenarios.Operation {
	op := scenarios.Operation{
		Name:  name,
		Setup: setupThreads,
		Run: func(ctx context.Context, db *sql.DB, fx scenarios.Fixture) error {
			f := fx.(ThreadFixture)
			var rd io.Reader
			if body != nil {
				b, err := json.Marshal(body)
				if err != nil {
					return fmt.Errorf("threadsuite: %s: encode body: %w", name, err)
				}
				rd = bytes.NewReader(b)
			}
			req := httptest.NewRequestWithContext(ctx, method, strings.ReplaceAll(path, "{id}", f.ThreadID), rd)
			req.Header.Set(handlers.UserHeader, f.UserID)
			if body != nil {
				req.Header.Set("Content-Type", "application/json")
			}
			rec := httptest.NewRecorder()
			handlers.New(db, opts...).Handler().ServeHTTP(rec, req)
			if rec.Code >= http.StatusBadRequest {
				return &HTTPError{Status: rec.Code, Body: rec.Body.String()}
			}
			return nil
		},
		Retries: retriesSerialization,
	}
	if writes {
		op.State = threadState
	}
	return op
}

// HTTPCatalog returns the eight operations driven through Service.Handler()
// (httptest, the user in header X-User-ID, the case's context as the
// request's), named like Catalog's; meant for runs with Config.Disconnect,
// where the client goes away at each step.
func HTTPCatalog(opts ...handlers.Option) []scenarios.Operation {
	opts = withExternalTitles(opts)
	return []scenarios.Operation{
		httpOp(OpListThreads, opts, false, http.MethodGet, "/api/threads?limit=10", nil),
		httpOp(OpCreateThread, opts, true, http.MethodPost, "/api/threads",
			map[string]any{"title": "Created over HTTP", "metadata": map[string]any{"source": "http"}}),
		httpOp(OpGetThread, opts, false, http.MethodGet, "/api/threads/{id}", nil),
		httpOp(OpUpdateThread, opts, true, http.MethodPatch, "/api/threads/{id}",
			map[string]any{"title": "Renamed over HTTP", "metadata": map[string]any{"color": "green"}}),
		httpOp(OpDeleteThread, opts, true, http.MethodDelete, "/api/threads/{id}", nil),
		httpOp(OpAutoRename, opts, true, http.MethodPost, "/api/threads/{id}/auto-rename", nil),
		httpOp(OpGetMessages, opts, false, http.MethodGet, "/api/threads/{id}/messages?limit=10", nil),
		httpOp(OpSendMessage, opts, true, http.MethodPost, "/api/threads/{id}/messages",
			map[string]any{"role": "user", "content": "Sent over HTTP", "client_message_id": "http-1"}),
	}
}

// Lookup returns the operation named name from ops.
func Lookup(ops []scenarios.Operation, name string) (scenarios.Operation, bool) {
	for _, op := range ops {
		if op.Name == name {
			return op, true
		}
	}
	return scenarios.Operation{}, false
}
