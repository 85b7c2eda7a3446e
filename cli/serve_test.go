package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"os"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sessionsafe/sessionsafe/internal/testkit"
)

// syncBuffer is a bytes.Buffer safe to read while the server writes to it.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

var listenRE = regexp.MustCompile(`listening on (http://[0-9.:]+)`)

// startServe runs `sessionsafe serve` in-process and returns its base URL and a stop function
// that shuts it down (as SIGTERM does) and returns its exit code and output.
func startServe(t *testing.T, args ...string) (string, func() (int, string)) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	var out, errOut syncBuffer
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, append([]string{"serve", "-addr", "127.0.0.1:0"}, args...), &out, &errOut, os.Getenv)
	}()
	// The server listens once it has a Postgres, which may take a container start: poll to
	// the test's own deadline for the line that says where, or for an early exit.
	var base string
	err := testkit.Poll(testkit.Within(t, 90*time.Second), func() error {
		select {
		case code := <-done:
			needPostgres(t, code, errOut.String())
			t.Fatalf("serve exited %d before listening:\n%s%s", code, out.String(), errOut.String())
		default:
		}
		m := listenRE.FindStringSubmatch(out.String())
		if m == nil {
			return errors.New("no \"listening on\" line yet")
		}
		base = m[1]
		return nil
	})
	if err != nil {
		t.Fatalf("serve never listened: %v\n%s%s", err, out.String(), errOut.String())
	}
	stop := func() (int, string) {
		cancel()
		select {
		case code := <-done:
			return code, out.String() + errOut.String()
		case <-time.After(time.Until(testkit.Within(t, 60*time.Second))):
			t.Fatalf("serve did not stop after the signal, by the test's deadline")
		}
		return -1, ""
	}
	return base, stop
}

func request(t *testing.T, method, url, body string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("X-User-ID", "alice")
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func debugSessions(t *testing.T, base string) debugState {
	t.Helper()
	code, body := request(t, "GET", base+"/debug/sessions", "")
	if code != 200 {
		t.Fatalf("GET /debug/sessions: %d %s", code, body)
	}
	var st debugState
	if err := json.Unmarshal([]byte(body), &st); err != nil {
		t.Fatalf("GET /debug/sessions: not JSON: %v\n%s", err, body)
	}
	return st
}

func TestServe(t *testing.T) {
	if testing.Short() {
		t.Skip("starts Postgres")
	}
	tests := []struct {
		name     string
		args     []string
		wantExit int
		wantHeld bool // /debug/sessions shows a connection held after the failing request
	}{
		{"clean", nil, exitOK, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			base, stop := startServe(t, tt.args...)
			code, body := request(t, "POST", base+"/api/threads", `{"title":"hello"}`)
			if code != http.StatusCreated && code != http.StatusOK {
				t.Fatalf("POST /api/threads: %d %s", code, body)
			}
			var th struct{ ID string }
			_ = json.Unmarshal([]byte(body), &th)
			code, body = request(t, "DELETE", base+"/api/threads/"+th.ID, "")
			t.Logf("DELETE: %d %s", code, strings.TrimSpace(body))
			st := debugSessions(t, base)
			if st.AppName == "" || st.Pool.MaxOpen != 10 {
				t.Errorf("/debug/sessions: application_name %q, max_open %d; want set, 10", st.AppName, st.Pool.MaxOpen)
			}
			if held := st.Pool.InUse > 0 && st.Held != ""; held != tt.wantHeld {
				t.Errorf("/debug/sessions: in_use %d, held %q; want held=%v", st.Pool.InUse, st.Held, tt.wantHeld)
			}
			if tt.wantHeld && !strings.Contains(st.Held, "handlers") {
				t.Errorf("/debug/sessions held %q: want the handlers' frame that acquired it", st.Held)
			}
			exit, out := stop()
			if exit != tt.wantExit {
				t.Errorf("serve exit %d; want %d\n%s", exit, tt.wantExit, out)
			}
		})
	}
}
