package handlers

import (
	"encoding/json"
	"net/http/httptest"
	"strings"
	"testing"
)

// TestPostgresHTTPRequestContextReachesDatabase: a request that times out
// while its statement hangs is answered with an error, and its transaction
// is gone from the server: the request context reached the database.
func TestPostgresHTTPRequestContextReachesDatabase(t *testing.T) {
	f := newPG(t)
	th, ctx := f.hangingThread(t, 1, sqlListMessages)
	req := httptest.NewRequestWithContext(ctx, "GET", "/api/threads/"+th.ID+"/messages", nil)
	req.Header.Set(UserHeader, pgUser)
	rec := httptest.NewRecorder()
	f.svc.Handler().ServeHTTP(rec, req)
	if rec.Code < 500 {
		t.Fatalf("status: got %d; want a 5xx for a request that timed out", rec.Code)
	}
	f.mustClean(t)
}

// TestPostgresHTTPRoundTrip: create, send and read back through the API.
func TestPostgresHTTPRoundTrip(t *testing.T) {
	f := newPG(t)
	h := f.svc.Handler()
	do := func(method, target, body string, want int) string {
		t.Helper()
		req := httptest.NewRequest(method, target, strings.NewReader(body))
		req.Header.Set(UserHeader, pgUser)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != want {
			t.Fatalf("%s %s: got %d %s; want %d", method, target, rec.Code, rec.Body, want)
		}
		return rec.Body.String()
	}
	var created Thread
	if err := json.Unmarshal([]byte(do("POST", "/api/threads", `{"title":"api"}`, 201)), &created); err != nil {
		t.Fatalf("create: %v", err)
	}
	id := created.ID
	do("POST", "/api/threads/"+id+"/messages", `{"content":"hello over http","client_message_id":"h1"}`, 201)
	do("POST", "/api/threads/"+id+"/messages", `{"content":"hello over http","client_message_id":"h1"}`, 201)
	if got := do("GET", "/api/threads/"+id, "", 200); !strings.Contains(got, `"message_count":1`) {
		t.Fatalf("thread %s: want message_count 1 after a retried send", got)
	}
	do("POST", "/api/threads/"+id+"/auto-rename", "", 200)
	do("DELETE", "/api/threads/"+id, "", 204)
	do("GET", "/api/threads/"+id, "", 404)
	f.mustClean(t)
}
