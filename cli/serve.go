package cli

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"

	"github.com/sessionsafe/sessionsafe/chaos"
	"github.com/sessionsafe/sessionsafe/faults"
	"github.com/sessionsafe/sessionsafe/internal/redact"
	"github.com/sessionsafe/sessionsafe/leakcheck"
)

// debugState is what /debug/sessions shows.
type debugState struct {
	Time     time.Time       `json:"time"`
	AppName  string          `json:"application_name"`
	Provider string          `json:"provider"`
	Pool     poolStats       `json:"pool"`
	Held     string          `json:"held"`     // what is in use now, with where it was acquired
	Findings []debugFinding  `json:"findings"` // leaks found now: server sessions, long transactions
	Faults   debugFaultState `json:"faults"`
}

type poolStats struct {
	MaxOpen           int     `json:"max_open"`
	Open              int     `json:"open"`
	InUse             int     `json:"in_use"`
	Idle              int     `json:"idle"`
	WaitCount         int64   `json:"wait_count"`
	WaitSeconds       float64 `json:"wait_seconds"`
	MaxIdleClosed     int64   `json:"max_idle_closed"`
	MaxLifetimeClosed int64   `json:"max_lifetime_closed"`
}

type debugFinding struct {
	Check   string `json:"check"`
	Summary string `json:"summary"`
	Detail  string `json:"detail,omitempty"`
}

type debugFaultState struct {
	Rate  float64  `json:"rate"`
	Seed  int64    `json:"seed"`
	Plan  string   `json:"plan"`
	Count int64    `json:"fired_count"`
	Fired []string `json:"fired"` // the latest
}

// server is the state of `sessionsafe serve`.
type server struct {
	db       *sql.DB
	admin    *sql.DB
	appName  string
	provider string
	tracker  *leakcheck.Tracker
	rate     *faults.Injector // faults at a seeded rate (nil: -fault-rate 0)
	o        *options

	mu    sync.Mutex
	inj   *faults.Injector
	plan  string
	fired []string // firings of plans already spent
}

func runServe(ctx context.Context, o *options, e *env) int {
	if !o.seedSet {
		o.seed = e.now().UnixNano() % 1_000_000_000
	}
	var plan faults.Plan
	if o.plan != "" {
		p, err := faults.ParsePlan(o.plan)
		if err != nil {
			fmt.Fprintf(e.stderr, "%s serve: -plan %q: %s\n", e.prog, o.plan, oneLine(err.Error()))
			return exitUsage
		}
		plan = p
	}
	ln, err := net.Listen("tcp", o.addr)
	if err != nil {
		fmt.Fprintf(e.stderr, "%s serve: -addr %s: %s\n", e.prog, o.addr, oneLine(err.Error()))
		return exitUsage
	}
	defer ln.Close()
	logw := e.stderr
	srvPG, err := startPostgres(ctx, o, logw)
	if err != nil {
		return e.fail("serve", err)
	}
	defer srvPG.Close()
	db, err := newDatabase(ctx, srvPG, o.cat)
	if err != nil {
		return e.fail("serve", err)
	}
	defer db.Close()

	s := &server{admin: db.Admin, appName: db.AppName + "-serve", provider: srvPG.Provider(), tracker: leakcheck.NewTracker(), o: o}
	pc, err := pgx.ParseConfig(db.DSN)
	if err != nil {
		return e.fail("serve", err)
	}
	pc.RuntimeParams["application_name"] = s.appName
	if o.faultRate > 0 {
		// The faults of a chaos run, at the seeded rate, for as long as the server lives.
		wire := faults.NewWire()
		wire.Install(&pc.Config)
		s.rate = faults.NewInjector(faults.WithMaxSteps(64), faults.WithWire(wire), faults.WithServer(faults.NewServer(s.admin), s.appName))
		s.rate.Use(faults.NewRate(o.seed, o.faultRate, chaos.Faults(true, false)))
	}
	var conn driver.Connector = s.tracker.WrapConnector(stdlib.GetConnector(*pc))
	if s.rate != nil {
		conn = s.rate.WrapConnector(conn)
	}
	// The trace is bounded (a long-lived server), firings are kept.
	s.inj = faults.NewInjector(faults.WithMaxSteps(10000))
	conn = s.inj.WrapConnector(conn)
	if o.plan != "" {
		s.inj.Arm(plan)
		s.plan = plan.String()
	}
	s.db = sql.OpenDB(conn)
	defer s.db.Close()
	s.db.SetMaxOpenConns(o.poolSize)

	api := o.cat.Handler(s.db)
	hs := &http.Server{Handler: s.routes(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if s.rate != nil {
			// A cancel fault cancels this request's context alone.
			ctx, cancel := s.rate.Context(r.Context())
			defer cancel()
			r = r.WithContext(ctx)
		}
		api.ServeHTTP(w, r)
	})), ReadHeaderTimeout: 10 * time.Second}
	fmt.Fprintf(e.stdout, "%s serve: listening on http://%s (postgres: %s, application_name %s, fault rate %g, seed %d, plan %q)\n", e.prog,
		ln.Addr(), srvPG.Provider(), s.appName, o.faultRate, o.seed, s.plan)
	fmt.Fprintf(e.stdout, "  try: curl -s http://%s/debug/sessions\n", ln.Addr())
	errc := make(chan error, 1)
	go func() { errc <- hs.Serve(ln) }()
	select {
	case err := <-errc:
		if !errors.Is(err, http.ErrServerClosed) {
			fmt.Fprintf(e.stderr, "%s serve: %s\n", e.prog, err)
			return exitUsage
		}
	case <-ctx.Done():
		fmt.Fprintf(e.stdout, "%s serve: shutting down (draining requests)\n", e.prog)
		sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := hs.Shutdown(sctx); err != nil {
			fmt.Fprintf(e.stderr, "%s serve: shutdown: %s\n", e.prog, err)
		}
		<-errc
	}
	// At rest, nothing may be held.
	fctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := leakcheck.Find(fctx, leakcheck.WithDB(s.db), leakcheck.WithTracker(s.tracker), leakcheck.WithServer(s.admin, s.appName), leakcheck.WithTimeout(2*time.Second)); err != nil {
		fmt.Fprintf(e.stdout, "%s serve: leaks at shutdown:\n%s\n", e.prog, redact.Text(err.Error()))
		return exitViolations
	}
	fmt.Fprintf(e.stdout, "%s serve: stopped; nothing leaked\n", e.prog)
	return exitOK
}

// sessions serves /debug/sessions: pool stats and the leaks visible now, with attribution.
func (s *server) sessions(w http.ResponseWriter, r *http.Request) {
	st := s.db.Stats()
	out := debugState{Time: time.Now().UTC(), AppName: s.appName, Provider: s.provider,
		Pool: poolStats{MaxOpen: st.MaxOpenConnections, Open: st.OpenConnections, InUse: st.InUse, Idle: st.Idle,
			WaitCount: st.WaitCount, WaitSeconds: st.WaitDuration.Seconds(), MaxIdleClosed: st.MaxIdleClosed, MaxLifetimeClosed: st.MaxLifetimeClosed},
		Held: s.tracker.Report(r.Context(), s.db), Findings: []debugFinding{}}
	ctx, cancel := context.WithTimeout(r.Context(), 3*time.Second)
	defer cancel()
	add := func(err error) {
		var le *leakcheck.Error
		if errors.As(err, &le) {
			for _, f := range le.Findings {
				out.Findings = append(out.Findings, debugFinding{Check: string(f.Check), Summary: f.Summary, Detail: f.Detail})
			}
		} else if err != nil {
			out.Findings = append(out.Findings, debugFinding{Check: "error", Summary: err.Error()})
		}
	}
	// A short poll: a backend busy with a request in flight is not a leak, one idle in
	// transaction for longer is.
	add(leakcheck.FindServer(ctx, s.admin, s.appName, leakcheck.WithTimeout(200*time.Millisecond), leakcheck.WithLongTransaction(5*time.Second)))
	add(leakcheck.FindLongTransactions(ctx, s.tracker, leakcheck.WithLongTransaction(5*time.Second)))
	s.mu.Lock()
	out.Faults.Plan = s.plan
	out.Faults.Fired = append(out.Faults.Fired, s.fired...)
	for _, f := range s.inj.Fired() {
		out.Faults.Fired = append(out.Faults.Fired, f.String())
	}
	s.mu.Unlock()
	out.Faults.Count = int64(len(out.Faults.Fired))
	if s.rate != nil {
		out.Faults.Count += s.rate.FiredCount()
		for _, f := range s.rate.Fired() {
			out.Faults.Fired = append(out.Faults.Fired, f.String())
		}
		out.Faults.Rate, out.Faults.Seed = s.o.faultRate, s.o.seed
	}
	if out.Faults.Fired == nil {
		out.Faults.Fired = []string{}
	}
	w.Header().Set("Content-Type", "application/json")
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(out)
}

// maxPlanBytes bounds the body of POST /debug/faults.
const maxPlanBytes = 4096

// routes is the server's handler: the /debug endpoints, and api for everything else. A
// /debug endpoint asked with another method answers 405 with Allow, not the API's 404.
func (s *server) routes(api http.Handler) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /debug/sessions", s.sessions)
	mux.HandleFunc("/debug/sessions", methodNotAllowed("GET, HEAD"))
	mux.HandleFunc("POST /debug/faults", s.arm)
	mux.HandleFunc("/debug/faults", methodNotAllowed("POST"))
	mux.Handle("/", api)
	return mux
}

// debugError writes an error in the API's shape: {"error": {"code", "message"}}.
func debugError(w http.ResponseWriter, status int, code, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	var body struct {
		Error struct {
			Code    string `json:"code"`
			Message string `json:"message"`
		} `json:"error"`
	}
	body.Error.Code, body.Error.Message = code, msg
	_ = json.NewEncoder(w).Encode(body)
}

func methodNotAllowed(allow string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Allow", allow)
		debugError(w, http.StatusMethodNotAllowed, "method_not_allowed",
			fmt.Sprintf("%s %s: method not allowed; allowed: %s", r.Method, r.URL.Path, allow))
	}
}

// arm serves POST /debug/faults: the body is a fault plan, armed from now on ("" disarms).
// A body over maxPlanBytes is refused whole (413): a cut plan would arm something else.
func (s *server) arm(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxPlanBytes))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			debugError(w, http.StatusRequestEntityTooLarge, "payload_too_large",
				fmt.Sprintf("fault plan over %d bytes: nothing armed", maxPlanBytes))
			return
		}
		debugError(w, http.StatusBadRequest, "bad_request", "read fault plan: "+err.Error())
		return
	}
	p, err := faults.ParsePlan(strings.TrimSpace(string(body)))
	if err != nil {
		debugError(w, http.StatusBadRequest, "bad_plan", err.Error())
		return
	}
	s.mu.Lock()
	s.spend()
	s.inj.Arm(p)
	s.plan = p.String()
	s.mu.Unlock()
	fmt.Fprintf(w, "armed %q\n", p.String())
}

// spend keeps the firings of the armed plan before it is replaced. Call with s.mu held.
func (s *server) spend() {
	for _, f := range s.inj.Fired() {
		s.fired = append(s.fired, f.String())
	}
	if n := len(s.fired); n > 64 {
		s.fired = append([]string(nil), s.fired[n-64:]...)
	}
}
