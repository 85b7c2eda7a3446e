package cli

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/sessionsafe/sessionsafe/faults"
)

// TestDebugRoutes: the /debug endpoints refuse what they cannot honour in the API's JSON
// error shape: a fault plan over the limit arms nothing (413, not a cut plan armed), and a
// wrong method is 405 with Allow, not the API's 404.
func TestDebugRoutes(t *testing.T) {
	const plan = "match=commit#1:pgerr=40001"
	tests := []struct {
		name      string
		method    string
		path      string
		body      string
		want      int
		allow     string
		contains  string
		wantArmed string
	}{
		{"arm", "POST", "/debug/faults", plan, http.StatusOK, "", "armed", plan},
		{"arm-too-large", "POST", "/debug/faults", plan + strings.Repeat(" ", maxPlanBytes), http.StatusRequestEntityTooLarge, "", `"code":"payload_too_large"`, ""},
		{"arm-too-large-names-limit", "POST", "/debug/faults", strings.Repeat("x", maxPlanBytes+1), http.StatusRequestEntityTooLarge, "", "4096 bytes", ""},
		{"arm-bad-plan", "POST", "/debug/faults", "step=x:boom", http.StatusBadRequest, "", `"code":"bad_plan"`, ""},
		{"faults-wrong-method", "GET", "/debug/faults", "", http.StatusMethodNotAllowed, "POST", `"code":"method_not_allowed"`, ""},
		{"sessions-wrong-method", "POST", "/debug/sessions", "", http.StatusMethodNotAllowed, "GET, HEAD", `"code":"method_not_allowed"`, ""},
		{"api-passes-through", "GET", "/api/threads", "", http.StatusTeapot, "", "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := &server{inj: faults.NewInjector()}
			h := s.routes(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusTeapot) }))
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, httptest.NewRequest(tt.method, tt.path, strings.NewReader(tt.body)))
			if rec.Code != tt.want {
				t.Errorf("%s %s: status %d; want %d\n%s", tt.method, tt.path, rec.Code, tt.want, rec.Body)
			}
			if got := rec.Header().Get("Allow"); got != tt.allow {
				t.Errorf("%s %s: Allow %q; want %q", tt.method, tt.path, got, tt.allow)
			}
			if !strings.Contains(rec.Body.String(), tt.contains) {
				t.Errorf("%s %s: body %q lacks %q", tt.method, tt.path, rec.Body, tt.contains)
			}
			if s.plan != tt.wantArmed {
				t.Errorf("%s %s: armed %q; want %q", tt.method, tt.path, s.plan, tt.wantArmed)
			}
		})
	}
}
