package limit

import (
	"context"
	"strconv"
	"testing"
	"time"
)

func TestFailures(t *testing.T) {
	ctx := context.Background()
	f := NewFailures(10)
	var _ FailureLimiter = f
	for i := range 10 {
		if err := f.Check(ctx, "a", t0); err != nil {
			t.Fatalf("before failure %d: %v", i+1, err)
		}
		f.Fail(ctx, "a", t0)
	}
	r := rejection(t, f.Check(ctx, "a", t0))
	// 10 a minute: one is back after 6 s.
	if r.Limit != LimitAuthFailures || r.RetryAfter != 6*time.Second || r.RetryAfterSeconds() != 6 {
		t.Errorf("after 10 failures: %+v", r)
	}
	if err := f.Check(ctx, "a", t0); err == nil {
		t.Error("a Check consumed nothing, yet the next one passed")
	}
	if err := f.Check(ctx, "b", t0); err != nil {
		t.Errorf("another key was limited too: %v", err)
	}
	if err := f.Check(ctx, "a", t0.Add(6*time.Second)); err != nil {
		t.Errorf("after 6 s: %v", err)
	}
}

// TestFailuresMemoryBounded checks that keys that stopped failing are
// dropped once their bucket is full again.
func TestFailuresMemoryBounded(t *testing.T) {
	ctx := context.Background()
	f := NewFailures(10)
	for i := range 1000 {
		f.Fail(ctx, "ip:"+strconv.Itoa(i), t0)
	}
	if n := f.Keys(); n != 1000 {
		t.Fatalf("keys = %d, want 1000", n)
	}
	f.Fail(ctx, "late", t0.Add(2*time.Minute))
	if n := f.Keys(); n != 1 {
		t.Errorf("after the sweep: keys = %d, want 1", n)
	}
}
