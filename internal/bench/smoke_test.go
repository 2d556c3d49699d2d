package main

import (
	"context"
	"os"
	"testing"
	"time"

	"streamrelay/internal/redistest"
)

// TestMain lets this test binary serve as the bench's fake upstream, which
// the bench starts by re-executing itself.
func TestMain(m *testing.M) {
	maybeServeUpstream()
	os.Exit(m.Run())
}

// TestSmoke runs the benchmark itself, tiny, against every target, so
// that it cannot rot: every stream must complete with every delta.
func TestSmoke(t *testing.T) {
	if testing.Short() {
		t.Skip("starts the server, nginx and a fake upstream")
	}
	if _, err := findNginx(); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal(err)
		}
		t.Skip(err)
	}
	redistest.Binary(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cfg := Config{
		Levels:       []Level{{C: 5, D: 10 * time.Millisecond, K: 20}},
		Targets:      targets,
		Runs:         1,
		Ramp:         100 * time.Millisecond,
		NginxWorkers: 1,
		Log:          testWriter{t},
	}
	results, err := Run(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if len(results) != len(cfg.Targets) {
		t.Fatalf("got %d results, want %d", len(results), len(cfg.Targets))
	}
	for _, r := range results {
		if r.OK != 5 || r.Failed != 0 || r.Lost != 0 {
			t.Errorf("%s: %d ok, %d failed, %d deltas lost (errors %v); want 5 ok, 0 failed, 0 lost",
				r.Target, r.OK, r.Failed, r.Lost, r.Errors)
		}
		if r.Received != 5*20 || r.CPUMs <= 0 || r.PeakRSSKiB <= 0 {
			t.Errorf("%s: received %d deltas, cpu %.1f ms, peak RSS %d KiB: the measurement is broken",
				r.Target, r.Received, r.CPUMs, r.PeakRSSKiB)
		}
		if (r.Target == targetServer || r.Target == targetServerRedis) && (r.GoroutinesIdle == 0 || r.GoroutinesAfter > r.GoroutinesIdle) {
			t.Errorf("%s goroutines: %d idle, %d after the level; want back to idle", r.Target, r.GoroutinesIdle, r.GoroutinesAfter)
		}
	}
	for _, r := range results {
		if (r.Target == targetServerRedis) != (r.RedisCPUMs > 0) {
			t.Errorf("%s: Redis's CPU %.1f ms; want it measured for server+redis only", r.Target, r.RedisCPUMs)
		}
	}
	rep := newReport(cfg, results, "smoke")
	if len(rep.Medians) != len(targets) || len(rep.Ratios) != 1 || rep.Ratios[0].CPUPerDelta == 0 || rep.Ratios[0].CPUWithRedis == 0 {
		t.Errorf("report has %d rows and ratios %+v, want %d rows and one ratio with both CPU ratios", len(rep.Medians), rep.Ratios, len(targets))
	}
}

// testWriter sends the bench's progress lines to the test log.
type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(string(p))
	return len(p), nil
}
