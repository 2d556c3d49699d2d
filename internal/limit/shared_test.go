package limit

import (
	"context"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"streamrelay/internal/redisconn"
	"streamrelay/internal/redistest"
)

// instance is one relay's view of the shared limits: its own connection
// and its own Shared, as a separate process would have.
func instance(t *testing.T, srv *redistest.Server, cfg Config, lease time.Duration) (*Shared, *redisconn.Conn) {
	t.Helper()
	conn, err := redisconn.Open(srv.URL(), "test:", slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	s := NewShared(conn, cfg, lease)
	t.Cleanup(func() { s.Close(); conn.Close() })
	return s, conn
}

// admitted admits a stream through s and fails the test if refused.
func admitted(t *testing.T, s *Shared, key string) func() {
	t.Helper()
	release, err := s.Admit(key, time.Now())
	if err != nil {
		t.Fatalf("Admit(%s) = %v, want admitted", key, err)
	}
	return release
}

// refused admits through s and checks it is refused by the named limit.
func refused(t *testing.T, s *Shared, key, limit string) {
	t.Helper()
	release, err := s.Admit(key, time.Now())
	if err == nil {
		release()
		t.Fatalf("Admit(%s) admitted, want refused by %s", key, limit)
	}
	if r := rejection(t, err); r.Limit != limit {
		t.Fatalf("Admit(%s) refused by %s, want %s", key, r.Limit, limit)
	}
}

// TestSharedOneBudget spreads one caller over two instances: together
// they give it one budget, for the rate and for each cap.
func TestSharedOneBudget(t *testing.T) {
	srv := redistest.Start(t)
	tests := map[string]struct {
		cfg   Config
		first []string // callers admitted in turn, on A then B then A...
		then  string   // the next caller, refused by limit
		limit string
	}{
		"rate":           {Config{PerMinute: 1, Burst: 3}, []string{"r", "r", "r"}, "r", LimitRate},
		"caller streams": {Config{PerCaller: 3}, []string{"c", "c", "c"}, "c", LimitPerCaller},
		"global streams": {Config{Global: 3}, []string{"g1", "g2", "g3"}, "g4", LimitGlobal},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			srv.Flush(t)
			a, _ := instance(t, srv, tt.cfg, 0)
			b, _ := instance(t, srv, tt.cfg, 0)
			both := []*Shared{a, b}
			for i, key := range tt.first {
				defer admitted(t, both[i%2], key)()
			}
			refused(t, a, tt.then, tt.limit)
			refused(t, b, tt.then, tt.limit)
		})
	}
}

// TestSharedRelease checks that a slot ended on one instance is free at
// once on the other, and that a second release changes nothing.
func TestSharedRelease(t *testing.T) {
	srv := redistest.Start(t)
	cfg := Config{PerCaller: 1, Global: 2}
	a, _ := instance(t, srv, cfg, 0)
	b, _ := instance(t, srv, cfg, 0)
	release := admitted(t, a, "x")
	refused(t, b, "x", LimitPerCaller)
	releaseY := admitted(t, b, "y")
	refused(t, b, "z", LimitGlobal)
	release()
	release()
	defer admitted(t, b, "x")()
	refused(t, a, "z", LimitGlobal)
	releaseY()
	refused(t, a, "x", LimitPerCaller)
	defer admitted(t, a, "z")()
}

// TestSharedRateRetryAfter checks the rate's Retry-After comes from the
// shared bucket.
func TestSharedRateRetryAfter(t *testing.T) {
	srv := redistest.Start(t)
	a, _ := instance(t, srv, Config{PerMinute: 6, Burst: 1}, 0)
	admitted(t, a, "r")()
	_, err := a.Admit("r", time.Now())
	if r := rejection(t, err); r.Limit != LimitRate || r.RetryAfter <= 5*time.Second || r.RetryAfter > 10*time.Second {
		t.Errorf("rejection = %+v, want the rate with about 10 s to wait", r)
	}
}

// TestSharedLeases checks that a live instance's leases are renewed past
// their period, and that a stopped instance's leases expire within it.
func TestSharedLeases(t *testing.T) {
	const lease = 300 * time.Millisecond
	srv := redistest.Start(t)
	cfg := Config{PerCaller: 1}
	a, _ := instance(t, srv, cfg, lease)
	b, _ := instance(t, srv, cfg, lease)
	admitted(t, a, "live")
	admitted(t, a, "dead")
	renewed := a.renewals.Load()
	for a.renewals.Load() < renewed+4 { // over a whole lease period
		time.Sleep(lease / 10)
	}
	refused(t, b, "live", LimitPerCaller)
	refused(t, b, "dead", LimitPerCaller)

	a.Close() // no release, no renewal: what a crashed instance leaves
	stopped := time.Now()
	waitAdmitted(t, b, "dead", 3*lease)
	if waited := time.Since(stopped); waited > lease+lease/2 {
		t.Errorf("the slot came back after %v, want within the lease (%v)", waited, lease)
	}
}

// waitAdmitted polls until s admits key, for at most within.
func waitAdmitted(t *testing.T, s *Shared, key string, within time.Duration) func() {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		release, err := s.Admit(key, time.Now())
		if err == nil {
			return release
		}
		if time.Now().After(deadline) {
			t.Fatalf("Admit(%s) still refused after %v: %v", key, within, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestSharedRedisDown kills Redis: admission fails open to the
// instance's own limits, and comes back to the shared ones when Redis
// does, without a new Shared.
func TestSharedRedisDown(t *testing.T) {
	srv := redistest.Start(t)
	cfg := Config{PerCaller: 1}
	a, aconn := instance(t, srv, cfg, 300*time.Millisecond)
	b, bconn := instance(t, srv, cfg, 300*time.Millisecond)
	before := admitted(t, a, "x")
	srv.Kill(t)

	down := admitted(t, b, "x") // B alone has no stream for x
	if bconn.Up() {
		t.Error("conn.Up() after a failed command, want down")
	}
	refused(t, b, "x", LimitPerCaller) // its own limit still holds
	before()                           // a release while down: no error, no hang
	down()

	srv.Restart(t)
	redistest.WaitUp(t, aconn, 5*time.Second)
	redistest.WaitUp(t, bconn, 5*time.Second)
	defer admitted(t, a, "x")()
	refused(t, b, "x", LimitPerCaller)
}

// TestSharedKeys checks every key starts with the prefix and expires.
func TestSharedKeys(t *testing.T) {
	srv := redistest.Start(t)
	a, conn := instance(t, srv, Config{PerMinute: 60, PerCaller: 2, Global: 10}, 0)
	release := admitted(t, a, "k")
	defer release()
	ctx := context.Background()
	keys, err := conn.Keys(ctx, "*").Result()
	if err != nil {
		t.Fatal(err)
	}
	if len(keys) != 3 { // the global set, the caller's set, the caller's rate
		t.Errorf("keys = %q, want 3", keys)
	}
	for _, k := range keys {
		if !strings.HasPrefix(k, "test:") {
			t.Errorf("key %q lacks the prefix", k)
		}
		if ttl := conn.PTTL(ctx, k).Val(); ttl <= 0 {
			t.Errorf("key %q: TTL %v, want one", k, ttl)
		}
	}
}

// TestSharedFailures counts one client's failed authentications on two
// instances together, and on its own while Redis is down.
func TestSharedFailures(t *testing.T) {
	srv := redistest.Start(t)
	_, aconn := instance(t, srv, Config{}, 0)
	_, bconn := instance(t, srv, Config{}, 0)
	a, b := NewSharedFailures(aconn, 3), NewSharedFailures(bconn, 3)
	ctx, now := context.Background(), time.Now()
	for i, f := range []*SharedFailures{a, b, a} {
		if err := f.Check(ctx, "ip:1", now); err != nil {
			t.Fatalf("check before failure %d: %v", i+1, err)
		}
		if err := f.Fail(ctx, "ip:1", now); err != nil {
			t.Fatal(err)
		}
	}
	err := b.Check(ctx, "ip:1", now)
	if r := rejection(t, err); r.Limit != LimitAuthFailures || r.RetryAfter <= 0 || r.RetryAfter > 20*time.Second {
		t.Errorf("after 3 failures on two instances: %+v, want refused for up to 20 s", r)
	}
	if err := a.Check(ctx, "ip:2", now); err != nil {
		t.Errorf("another address: %v", err)
	}

	srv.Kill(t)
	for range 3 {
		b.Fail(ctx, "ip:3", now)
	}
	if bconn.Up() {
		t.Error("redis seen up after it was killed")
	}
	if err := b.Check(ctx, "ip:3", now); rejection(t, err).Limit != LimitAuthFailures {
		t.Errorf("while down, the instance's own count: %v", err)
	}
}
