package handlers

import (
	"context"
	"database/sql/driver"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/DATA-DOG/go-sqlmock"
)

// TestHTTP drives the API with httptest: every status code, malformed and
// oversized bodies (400, never 500), and bad input rejected before any
// database call.
func TestHTTP(t *testing.T) {
	path := "/api/threads/" + threadID
	tests := []struct {
		name       string
		method     string
		target     string
		user       string
		body       string
		expect     func(m sqlmock.Sqlmock)
		wantStatus int
		wantCode   string
		wantMsg    string // the error message, exactly, when set
	}{
		{name: "list-ok", method: "GET", target: "/api/threads?limit=5&offset=0", user: alice,
			expect: func(m sqlmock.Sqlmock) { expectAll(m, operation(t, "ListThreads").steps) }, wantStatus: 200},
		{name: "create-ok", method: "POST", target: "/api/threads", user: alice, body: `{"title":"hi","metadata":{"k":"v"}}`,
			expect: func(m sqlmock.Sqlmock) { expectAll(m, operation(t, "CreateThread").steps) }, wantStatus: 201},
		{name: "get-ok", method: "GET", target: path, user: alice,
			expect: func(m sqlmock.Sqlmock) { expectAll(m, operation(t, "GetThread").steps) }, wantStatus: 200},
		{name: "update-ok", method: "PATCH", target: path, user: alice, body: `{"title":"renamed"}`,
			expect: func(m sqlmock.Sqlmock) { expectAll(m, operation(t, "UpdateThread").steps) }, wantStatus: 200},
		{name: "delete-ok", method: "DELETE", target: path, user: alice,
			expect: func(m sqlmock.Sqlmock) { expectAll(m, operation(t, "DeleteThread").steps) }, wantStatus: 204},
		{name: "auto-rename-ok", method: "POST", target: path + "/auto-rename", user: alice,
			expect: func(m sqlmock.Sqlmock) { expectAll(m, operation(t, "AutoRename").steps) }, wantStatus: 200},
		{name: "messages-ok", method: "GET", target: path + "/messages", user: alice,
			expect: func(m sqlmock.Sqlmock) { expectAll(m, operation(t, "GetMessages").steps) }, wantStatus: 200},
		{name: "send-ok", method: "POST", target: path + "/messages", user: alice, body: `{"content":"hi there","client_message_id":"c-1"}`,
			expect: func(m sqlmock.Sqlmock) { expectAll(m, operation(t, "SendMessage").steps) }, wantStatus: 201},

		{name: "400-missing-user", method: "GET", target: "/api/threads", wantStatus: 400, wantCode: CodeInvalid},
		{name: "400-bad-limit", method: "GET", target: "/api/threads?limit=abc", user: alice, wantStatus: 400, wantCode: CodeInvalid},
		{name: "400-limit-out-of-range", method: "GET", target: "/api/threads?limit=1000", user: alice, wantStatus: 400, wantCode: CodeInvalid},
		{name: "400-bad-thread-id", method: "GET", target: "/api/threads/not-a-uuid", user: alice, wantStatus: 400, wantCode: CodeInvalid},
		{name: "400-malformed-json", method: "POST", target: "/api/threads", user: alice, body: `{"title":`, wantStatus: 400, wantCode: CodeInvalid},
		{name: "400-not-an-object", method: "POST", target: "/api/threads", user: alice, body: `[1,2]`, wantStatus: 400, wantCode: CodeInvalid},
		{name: "400-unknown-field", method: "POST", target: "/api/threads", user: alice, body: `{"titel":"x"}`, wantStatus: 400, wantCode: CodeInvalid},
		{name: "400-trailing-data", method: "POST", target: "/api/threads", user: alice, body: `{} {}`, wantStatus: 400, wantCode: CodeInvalid},
		{name: "400-metadata-not-object", method: "POST", target: "/api/threads", user: alice, body: `{"metadata":[1]}`, wantStatus: 400, wantCode: CodeInvalid},
		{name: "400-oversized-body", method: "POST", target: path + "/messages", user: alice,
			body: `{"content":"` + strings.Repeat("a", MaxBodyBytes) + `"}`, wantStatus: 400, wantCode: CodeInvalid},
		{name: "400-empty-content", method: "POST", target: path + "/messages", user: alice, body: `{"content":""}`, wantStatus: 400, wantCode: CodeInvalid},
		{name: "400-empty-patch", method: "PATCH", target: path, user: alice, body: `{}`, wantStatus: 400, wantCode: CodeInvalid},
		{name: "400-null-create", method: "POST", target: "/api/threads", user: alice, body: `null`, wantStatus: 400, wantCode: CodeInvalid,
			wantMsg: "invalid body: not a JSON object: got null"},
		{name: "400-null-patch", method: "PATCH", target: path, user: alice, body: " null\n", wantStatus: 400, wantCode: CodeInvalid,
			wantMsg: "invalid body: not a JSON object: got null"},
		{name: "400-null-send", method: "POST", target: path + "/messages", user: alice, body: `null`, wantStatus: 400, wantCode: CodeInvalid,
			wantMsg: "invalid body: not a JSON object: got null"},
		{name: "400-string-body", method: "POST", target: "/api/threads", user: alice, body: `"title"`, wantStatus: 400, wantCode: CodeInvalid,
			wantMsg: "invalid body: not a JSON object: got a string"},
		{name: "400-number-body", method: "POST", target: "/api/threads", user: alice, body: `42`, wantStatus: 400, wantCode: CodeInvalid,
			wantMsg: "invalid body: not a JSON object: got a number"},
		{name: "400-boolean-body", method: "POST", target: path + "/messages", user: alice, body: `true`, wantStatus: 400, wantCode: CodeInvalid,
			wantMsg: "invalid body: not a JSON object: got a boolean"},
		{name: "400-empty-body", method: "POST", target: "/api/threads", user: alice, body: ` `, wantStatus: 400, wantCode: CodeInvalid,
			wantMsg: "invalid body: empty; want a JSON object"},
		{name: "400-trailing-bracket", method: "POST", target: "/api/threads", user: alice, body: `{"title":"x"}]`, wantStatus: 400, wantCode: CodeInvalid,
			wantMsg: "invalid body: trailing data after the JSON object"},
		{name: "400-trailing-brace", method: "PATCH", target: path, user: alice, body: `{"title":"x"}}`, wantStatus: 400, wantCode: CodeInvalid,
			wantMsg: "invalid body: trailing data after the JSON object"},
		{name: "400-trailing-word", method: "POST", target: path + "/messages", user: alice, body: `{"content":"x"} garbage`, wantStatus: 400, wantCode: CodeInvalid,
			wantMsg: "invalid body: trailing data after the JSON object"},
		{name: "400-invalid-utf8-title", method: "POST", target: "/api/threads", user: alice, body: "{\"title\":\"caf\xe9\"}", wantStatus: 400, wantCode: CodeInvalid,
			wantMsg: "invalid body: not valid UTF-8"},
		{name: "400-invalid-utf8-patch-title", method: "PATCH", target: path, user: alice, body: "{\"title\":\"\xff\"}", wantStatus: 400, wantCode: CodeInvalid,
			wantMsg: "invalid body: not valid UTF-8"},
		{name: "400-invalid-utf8-metadata-value", method: "POST", target: "/api/threads", user: alice, body: "{\"metadata\":{\"k\":\"\xc3\"}}", wantStatus: 400, wantCode: CodeInvalid,
			wantMsg: "invalid body: not valid UTF-8"},
		{name: "400-invalid-utf8-metadata-key", method: "PATCH", target: path, user: alice, body: "{\"metadata\":{\"\xfe\":1}}", wantStatus: 400, wantCode: CodeInvalid,
			wantMsg: "invalid body: not valid UTF-8"},
		{name: "400-invalid-utf8-content", method: "POST", target: path + "/messages", user: alice, body: "{\"content\":\"hi \xed\xa0\x80\"}", wantStatus: 400, wantCode: CodeInvalid,
			wantMsg: "invalid body: not valid UTF-8"},
		{name: "400-lone-high-surrogate-title", method: "POST", target: "/api/threads", user: alice, body: `{"title":"a\ud83d"}`, wantStatus: 400, wantCode: CodeInvalid,
			wantMsg: `invalid body: a string escapes a lone UTF-16 surrogate (\ud800 to \udfff), which is no character`},
		{name: "400-lone-low-surrogate-content", method: "POST", target: path + "/messages", user: alice, body: `{"content":"\uDE00 hi"}`, wantStatus: 400, wantCode: CodeInvalid},
		{name: "400-high-surrogate-then-escape", method: "POST", target: path + "/messages", user: alice, body: `{"content":"\ud83d\u0041"}`, wantStatus: 400, wantCode: CodeInvalid},
		{name: "400-lone-surrogate-metadata", method: "PATCH", target: path, user: alice, body: `{"metadata":{"k":["\udbff"]}}`, wantStatus: 400, wantCode: CodeInvalid},
		{name: "create-ok-surrogate-pair", method: "POST", target: "/api/threads", user: alice, body: `{"title":"\ud83d\ude00 \\ud800 \u00e9"}`,
			expect: func(m sqlmock.Sqlmock) { expectAll(m, operation(t, "CreateThread").steps) }, wantStatus: 201},

		{name: "404-not-yours", method: "GET", target: path, user: "bob", wantStatus: 404, wantCode: CodeNotFound, wantMsg: "thread not found",
			expect: func(m sqlmock.Sqlmock) {
				m.ExpectBegin()
				m.ExpectQuery(sqlGetThread).WithArgs(threadID, "bob").WillReturnRows(noRows(threadCols...)())
				m.ExpectRollback()
			}},
		{name: "404-delete-missing", method: "DELETE", target: path, user: alice, wantStatus: 404, wantCode: CodeNotFound, wantMsg: "thread not found",
			expect: func(m sqlmock.Sqlmock) {
				m.ExpectBegin()
				m.ExpectExec(sqlArchiveThread).WillReturnResult(sqlmock.NewResult(0, 0))
				m.ExpectRollback()
			}},
		{name: "404-unknown-route", method: "GET", target: "/api/nope", user: alice, wantStatus: 404, wantCode: CodeNotFound},
		{name: "405-wrong-method", method: "PUT", target: path, user: alice, wantStatus: 405, wantCode: CodeMethodNotAllowed},
		{name: "409-constraint", method: "POST", target: "/api/threads", user: alice, body: `{"title":"x"}`, wantStatus: 409, wantCode: CodeConflict,
			wantMsg: "the request conflicts with the thread's stored state",
			expect:  func(m sqlmock.Sqlmock) { expectFailAt(m, operation(t, "CreateThread").steps, 1, pgErr("23505")) }},
		{name: "409-rename-without-message", method: "POST", target: path + "/auto-rename", user: alice, wantStatus: 409, wantCode: CodeConflict,
			wantMsg: "the thread has no user message to name it from",
			expect: func(m sqlmock.Sqlmock) {
				m.ExpectBegin()
				m.ExpectQuery(sqlThreadExists).WillReturnRows(oneColumn("one", int64(1))())
				m.ExpectQuery(sqlFirstUserMessage).WillReturnRows(noRows("content")())
				m.ExpectRollback()
			}},
		{name: "503-too-many-connections", method: "GET", target: "/api/threads", user: alice, wantStatus: 503, wantCode: CodeUnavailable,
			expect: func(m sqlmock.Sqlmock) { m.ExpectBegin().WillReturnError(pgErr("53300")) }},
		{name: "503-bad-connection", method: "GET", target: path + "/messages", user: alice, wantStatus: 503, wantCode: CodeUnavailable,
			expect: func(m sqlmock.Sqlmock) {
				expectFailAt(m, operation(t, "GetMessages").steps, 3, driver.ErrBadConn)
				m.ExpectClose()
			}},
		{name: "500-other-failure", method: "DELETE", target: path, user: alice, wantStatus: 500, wantCode: CodeInternal,
			expect: func(m sqlmock.Sqlmock) { expectFailAt(m, operation(t, "DeleteThread").steps, 1, errInjected) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newMock(t)
			if tt.expect != nil {
				tt.expect(f.mock)
			}
			req := httptest.NewRequest(tt.method, tt.target, strings.NewReader(tt.body))
			if tt.user != "" {
				req.Header.Set(UserHeader, tt.user)
			}
			rec := httptest.NewRecorder()
			f.svc.Handler().ServeHTTP(rec, req)
			if rec.Code != tt.wantStatus {
				t.Fatalf("status: got %d; want %d (body %s)", rec.Code, tt.wantStatus, rec.Body)
			}
			if tt.wantStatus == http.StatusMethodNotAllowed && rec.Header().Get("Allow") == "" {
				t.Fatalf("405 without an Allow header")
			}
			if tt.wantCode != "" {
				if ct := rec.Header().Get("Content-Type"); ct != "application/json" {
					t.Fatalf("error Content-Type: got %q; want application/json", ct)
				}
				var body errorBody
				if err := json.NewDecoder(rec.Body).Decode(&body); err != nil {
					t.Fatalf("error body: %v", err)
				}
				if body.Error.Code != tt.wantCode || body.Error.Message == "" {
					t.Fatalf("error body: got %+v; want code %q and a message", body, tt.wantCode)
				}
				if tt.wantMsg != "" && body.Error.Message != tt.wantMsg {
					t.Fatalf("error message: got %q; want %q", body.Error.Message, tt.wantMsg)
				}
				for _, internal := range []string{errInjected.Error(), "handlers:", "SQLSTATE", "select thread", OpGetThread + ":"} {
					if strings.Contains(body.Error.Message, internal) {
						t.Fatalf("error message %q exposes the internal error (%q); want a stable message", body.Error.Message, internal)
					}
				}
			}
			if err := f.invariants(); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// TestHTTPRequestContextReachesDatabase: a request whose context is already
// cancelled never reaches the database, is answered
// StatusClientClosedRequest and leaves nothing open.
func TestHTTPRequestContextReachesDatabase(t *testing.T) {
	f := newMock(t)
	ctx, cancel := contextWithCancel()
	cancel()
	req := httptest.NewRequestWithContext(ctx, "GET", "/api/threads", nil)
	req.Header.Set(UserHeader, alice)
	rec := httptest.NewRecorder()
	f.svc.Handler().ServeHTTP(rec, req)
	if rec.Code != StatusClientClosedRequest {
		t.Fatalf("status: got %d; want %d for a cancelled request", rec.Code, StatusClientClosedRequest)
	}
	if err := f.invariants(); err != nil {
		t.Fatal(err)
	}
}

// TestHTTPErrorLog: the client gets a stable message, the log the full
// error: at error level for a 5xx, at info level for a 4xx and for a request
// the client cancelled (answered StatusClientClosedRequest, not 500).
func TestHTTPErrorLog(t *testing.T) {
	path := "/api/threads/" + threadID
	tests := []struct {
		name       string
		method     string
		target     string
		user       string
		cancel     bool // cancel the request before it is served
		gen        func(cancel context.CancelFunc) TitleGenerator
		expect     func(m sqlmock.Sqlmock)
		wantStatus int
		wantLevel  slog.Level
		wantLogged string // in the logged error
	}{
		{name: "404-logs-the-call-chain", method: "GET", target: path, user: "bob",
			expect: func(m sqlmock.Sqlmock) {
				m.ExpectBegin()
				m.ExpectQuery(sqlGetThread).WithArgs(threadID, "bob").WillReturnRows(noRows(threadCols...)())
				m.ExpectRollback()
			},
			wantStatus: http.StatusNotFound, wantLevel: slog.LevelInfo, wantLogged: "get thread: select thread: handlers: thread not found"},
		{name: "400-logs-at-info", method: "GET", target: "/api/threads?limit=x", user: alice,
			wantStatus: http.StatusBadRequest, wantLevel: slog.LevelInfo, wantLogged: "handlers: invalid limit: not an integer"},
		{name: "500-logs-at-error", method: "DELETE", target: path, user: alice,
			expect:     func(m sqlmock.Sqlmock) { expectFailAt(m, operation(t, "DeleteThread").steps, 1, errInjected) },
			wantStatus: http.StatusInternalServerError, wantLevel: slog.LevelError, wantLogged: "delete thread: archive thread: injected failure"},
		{name: "cancelled-before-the-database", method: "GET", target: "/api/threads", user: alice, cancel: true,
			wantStatus: StatusClientClosedRequest, wantLevel: slog.LevelInfo, wantLogged: "context canceled"},
		{name: "cancelled-during-the-operation", method: "POST", target: path + "/auto-rename", user: alice,
			gen:        func(cancel context.CancelFunc) TitleGenerator { return cancellingGenerator{cancel} },
			expect:     func(m sqlmock.Sqlmock) { expectAll(m, operation(t, "AutoRename").steps[:4]) },
			wantStatus: StatusClientClosedRequest, wantLevel: slog.LevelInfo, wantLogged: "auto-rename: generate title: context canceled"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := contextWithCancel()
			defer cancel()
			logs := &logRecorder{}
			opts := []Option{WithLogger(slog.New(logs))}
			if tt.gen != nil {
				opts = append(opts, WithTitleGenerator(tt.gen(cancel)))
			}
			f := newMock(t, opts...)
			if tt.expect != nil {
				tt.expect(f.mock)
			}
			if tt.cancel {
				cancel()
			}
			req := httptest.NewRequestWithContext(ctx, tt.method, tt.target, nil)
			req.Header.Set(UserHeader, tt.user)
			rec := httptest.NewRecorder()
			f.svc.Handler().ServeHTTP(rec, req)
			if rec.Code != tt.wantStatus {
				t.Fatalf("status: got %d; want %d (body %s)", rec.Code, tt.wantStatus, rec.Body)
			}
			r, ok := logs.find("request failed")
			if !ok {
				t.Fatalf("no %q log record; want one at %v", "request failed", tt.wantLevel)
			}
			if r.Level != tt.wantLevel {
				t.Errorf("log level: got %v; want %v", r.Level, tt.wantLevel)
			}
			if got := r.attr("error"); !strings.Contains(got, tt.wantLogged) {
				t.Errorf("logged error: got %q; want it to contain %q", got, tt.wantLogged)
			}
			if err := f.invariants(); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// cancellingGenerator is a TitleGenerator during whose call the client goes
// away: it cancels the request and answers the context's error.
type cancellingGenerator struct{ cancel context.CancelFunc }

func (g cancellingGenerator) GenerateTitle(ctx context.Context, _ string) (string, error) {
	g.cancel()
	return "", ctx.Err()
}

// logRecorder is a slog.Handler that keeps every record.
type logRecorder struct {
	mu      sync.Mutex
	records []slog.Record
}

func (h *logRecorder) Enabled(context.Context, slog.Level) bool { return true }
func (h *logRecorder) WithAttrs([]slog.Attr) slog.Handler       { return h }
func (h *logRecorder) WithGroup(string) slog.Handler            { return h }

func (h *logRecorder) Handle(_ context.Context, r slog.Record) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.records = append(h.records, r.Clone())
	return nil
}

// find returns the first record with message msg.
func (h *logRecorder) find(msg string) (loggedRecord, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, r := range h.records {
		if r.Message == msg {
			return loggedRecord{r}, true
		}
	}
	return loggedRecord{}, false
}

// loggedRecord is a slog.Record whose attributes can be read by key.
type loggedRecord struct{ slog.Record }

// attr returns the value of the record's attribute key, as text.
func (r loggedRecord) attr(key string) string {
	var v string
	r.Attrs(func(a slog.Attr) bool {
		if a.Key == key {
			v = a.Value.String()
			return false
		}
		return true
	})
	return v
}
