package threadsuite

import (
	"maps"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/sessionsafe/sessionsafe/handlers"
	"github.com/sessionsafe/sessionsafe/pgtest"
)

// probeSeed returns the seed of this run: SESSIONSAFE_PROBE_SEED when set
// (a replay), else one from the clock. It is printed either way.
func probeSeed(tb testing.TB) int64 {
	tb.Helper()
	seed := time.Now().UnixNano()
	if s := os.Getenv("SESSIONSAFE_PROBE_SEED"); s != "" {
		var err error
		if seed, err = strconv.ParseInt(s, 10, 64); err != nil {
			tb.Fatalf("SESSIONSAFE_PROBE_SEED=%q: %v", s, err)
		}
	}
	tb.Logf("probe seed %d (replay with SESSIONSAFE_PROBE_SEED=%d)", seed, seed)
	return seed
}

// runProbe runs the probe named name with cfg on a fresh migrated database,
// logs its summary and returns its result.
func runProbe(t *testing.T, name string, cfg ProbeConfig) ProbeResult {
	t.Helper()
	p, ok := LookupProbe(name)
	if !ok {
		t.Fatalf("no probe %q", name)
	}
	db := pgtest.New(t, pgtest.WithMigration("handlers", handlers.Migrate))
	res := p.Run(t.Context(), ProbeEnv{DSN: db.DSN, AppName: db.AppName, Admin: db.Admin}, cfg)
	t.Log(res.Summary())
	return res
}

// TestProbes runs every concurrency probe on real Postgres against the
// correct handlers: each must come back clean. The seed is printed; a failure
// prints the command that replays it.
func TestProbes(t *testing.T) {
	seed := probeSeed(t)
	tests := []struct {
		name  string
		probe string
		cfg   ProbeConfig
	}{
		{name: "pool/size-1", probe: "pool", cfg: ProbeConfig{PoolSize: 1}},
		{name: "pool/size-2", probe: "pool", cfg: ProbeConfig{PoolSize: 2}},
		{name: "mixed/size-1", probe: "mixed", cfg: ProbeConfig{Workers: 6, Ops: 25, PoolSize: 1}},
		{name: "mixed/size-2", probe: "mixed", cfg: ProbeConfig{Workers: 6, Ops: 25, PoolSize: 2}},
		{name: "lost-update", probe: "lost-update", cfg: ProbeConfig{Workers: 12, Ops: 3}},
		{name: "send-order", probe: "send-order", cfg: ProbeConfig{Workers: 8, Ops: 5}},
		{name: "delete-vs-send", probe: "delete-vs-send", cfg: ProbeConfig{Workers: 6, Ops: 8}},
		{name: "finished-tx", probe: "finished-tx", cfg: ProbeConfig{Workers: 6, Ops: 10}},
		{name: "cancellation", probe: "cancellation"},
		{name: "external-call", probe: "external-call"},
		{name: "notify", probe: "notify"},
		{name: "error-path", probe: "error-path"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := tt.cfg
			cfg.Seed = seed
			cfg.Replay = func(string, int64) string {
				return "SESSIONSAFE_PROBE_SEED=" + strconv.FormatInt(seed, 10) + " go test -race ./threadsuite -run 'TestProbes/" + tt.name + "$'"
			}
			if err := runProbe(t, tt.probe, cfg).Err(); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// TestProbeDataChecks shows each data invariant of the probes failing on
// planted facts (a counter off by one, a seq gap, a duplicate client id, an
// acknowledged write missing, a failed write stored, a send accepted after the
// delete, a message stored after the archive point, a refused send stored)
// and passing on consistent ones.
func TestProbeDataChecks(t *testing.T) {
	good := func() *threadFacts {
		return &threadFacts{ID: "t1", Counter: 3, Messages: 3, MinSeq: 1, MaxSeq: 3, Metadata: `{"a": 1, "user_id": "u"}`,
			Clients: map[string]int{"c1": 1, "c2": 1}}
	}
	deleteAck := 10 * time.Millisecond
	tests := []struct {
		name  string
		plant func(f *threadFacts, l *mixedLedger, recs *[]sendRecord)
		check string // "" : no finding
	}{
		{name: "consistent", plant: func(*threadFacts, *mixedLedger, *[]sendRecord) {}},
		{name: "counter-off", plant: func(f *threadFacts, _ *mixedLedger, _ *[]sendRecord) { f.Counter = 4 }, check: "count"},
		{name: "seq-gap", plant: func(f *threadFacts, _ *mixedLedger, _ *[]sendRecord) { f.MaxSeq = 4 }, check: "seq"},
		{name: "duplicate-client-id", plant: func(f *threadFacts, _ *mixedLedger, _ *[]sendRecord) { f.Clients["c1"] = 2 }, check: "duplicate"},
		{name: "acknowledged-send-missing", plant: func(_ *threadFacts, l *mixedLedger, _ *[]sendRecord) { l.acked["c9"] = "t1" }, check: "acknowledged"},
		{name: "failed-send-stored", plant: func(_ *threadFacts, l *mixedLedger, _ *[]sendRecord) { l.absent["c2"] = "t1" }, check: "all-or-nothing"},
		{name: "acknowledged-patch-lost", plant: func(_ *threadFacts, l *mixedLedger, _ *[]sendRecord) { l.keys["b"] = "t1" }, check: "lost-update"},
		{name: "failed-patch-stored", plant: func(_ *threadFacts, l *mixedLedger, _ *[]sendRecord) { l.keyAbsent["a"] = "t1" }, check: "all-or-nothing"},
		{name: "send-after-delete-succeeded", plant: func(_ *threadFacts, _ *mixedLedger, recs *[]sendRecord) {
			*recs = append(*recs, sendRecord{cid: "late", start: deleteAck + time.Millisecond})
		}, check: "archive"},
		{name: "send-after-delete-stored", plant: func(f *threadFacts, _ *mixedLedger, recs *[]sendRecord) {
			f.Clients["late"] = 1
			*recs = append(*recs, sendRecord{cid: "late", start: deleteAck + time.Millisecond, err: handlers.ErrNotFound})
		}, check: "archive"},
		{name: "thread-not-archived", plant: func(f *threadFacts, _ *mixedLedger, _ *[]sendRecord) { f.Archived = false }, check: "archive"},
		{name: "send-stored-after-archive-point", plant: func(f *threadFacts, _ *mixedLedger, recs *[]sendRecord) {
			f.Clients["slipped"] = 1 // begun before the delete returned, stored after it
			*recs = append(*recs, sendRecord{cid: "slipped", start: deleteAck - time.Millisecond})
		}, check: "archive"},
		{name: "refused-send-stored", plant: func(_ *threadFacts, _ *mixedLedger, recs *[]sendRecord) {
			(*recs)[1].err = handlers.ErrNotFound
		}, check: "all-or-nothing"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := good()
			f.Archived = true
			l := &mixedLedger{acked: map[string]string{"c1": "t1"}, absent: map[string]string{},
				keys: map[string]string{"a": "t1"}, keyAbsent: map[string]string{}}
			recs := []sendRecord{{cid: "c1", start: time.Millisecond}, {cid: "c2", start: 2 * time.Millisecond}}
			atArchive := maps.Clone(f.Clients)
			tt.plant(f, l, &recs)
			r := &probeRun{probe: "unit"}
			fs := map[string]*threadFacts{"t1": f}
			r.checkCounts(fs)
			l.check(r, fs)
			checkArchive(r, f, deleteAck, atArchive, recs)
			if tt.check == "" {
				if len(r.findings) > 0 {
					t.Fatalf("consistent facts: got findings %v; want none", r.findings)
				}
				return
			}
			for _, fd := range r.findings {
				if fd.Check == tt.check {
					t.Logf("caught: %s", fd)
					return
				}
			}
			t.Fatalf("planted %s: no %q finding; got %v", tt.name, tt.check, r.findings)
		})
	}
}
