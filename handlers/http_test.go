package handlers

import (
	"database/sql/driver"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
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

		{name: "404-not-yours", method: "GET", target: path, user: "bob", wantStatus: 404, wantCode: CodeNotFound,
			expect: func(m sqlmock.Sqlmock) {
				m.ExpectBegin()
				m.ExpectQuery(sqlGetThread).WithArgs(threadID, "bob").WillReturnRows(noRows(threadCols...)())
				m.ExpectRollback()
			}},
		{name: "404-delete-missing", method: "DELETE", target: path, user: alice, wantStatus: 404, wantCode: CodeNotFound,
			expect: func(m sqlmock.Sqlmock) {
				m.ExpectBegin()
				m.ExpectExec(sqlArchiveThread).WillReturnResult(sqlmock.NewResult(0, 0))
				m.ExpectRollback()
			}},
		{name: "404-unknown-route", method: "GET", target: "/api/nope", user: alice, wantStatus: 404, wantCode: CodeNotFound},
		{name: "405-wrong-method", method: "PUT", target: path, user: alice, wantStatus: 405, wantCode: CodeMethodNotAllowed},
		{name: "409-constraint", method: "POST", target: "/api/threads", user: alice, body: `{"title":"x"}`, wantStatus: 409, wantCode: CodeConflict,
			expect: func(m sqlmock.Sqlmock) { expectFailAt(m, operation(t, "CreateThread").steps, 1, pgErr("23505")) }},
		{name: "409-rename-without-message", method: "POST", target: path + "/auto-rename", user: alice, wantStatus: 409, wantCode: CodeConflict,
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
				if tt.wantStatus == 500 && strings.Contains(body.Error.Message, errInjected.Error()) {
					t.Fatalf("500 body leaks the internal error: %q", body.Error.Message)
				}
			}
			if err := f.invariants(); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// TestHTTPRequestContextReachesDatabase: a request whose context is already
// cancelled never reaches the database and leaves nothing open.
func TestHTTPRequestContextReachesDatabase(t *testing.T) {
	f := newMock(t)
	ctx, cancel := contextWithCancel()
	cancel()
	req := httptest.NewRequestWithContext(ctx, "GET", "/api/threads", nil)
	req.Header.Set(UserHeader, alice)
	rec := httptest.NewRecorder()
	f.svc.Handler().ServeHTTP(rec, req)
	if rec.Code < 500 {
		t.Fatalf("status: got %d; want a 5xx for a cancelled request", rec.Code)
	}
	if err := f.invariants(); err != nil {
		t.Fatal(err)
	}
}
