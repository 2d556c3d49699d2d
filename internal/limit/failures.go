package limit

import (
	"context"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// LimitAuthFailures names the failed-authentication limit in a Rejection.
const LimitAuthFailures = "auth_failures"

// FailureLimiter limits failed attempts, such as wrong API tokens, per key
// (a client address). Failures is the in-memory one; a shared store can
// back another, so that replicas count together. Implementations must be
// safe for concurrent use.
type FailureLimiter interface {
	// Check returns a *Rejection, with LimitAuthFailures, when key has used
	// up its failures at now; nil when it may try. Any other error means
	// the limiter could not tell.
	Check(ctx context.Context, key string, now time.Time) error
	// Fail records one failed attempt by key at now.
	Fail(ctx context.Context, key string, now time.Time) error
}

// Failures is a FailureLimiter in memory: a token bucket per key from
// golang.org/x/time/rate, perMinute failures a minute with a burst of as
// many, so a key that has failed perMinute times waits until one is back.
type Failures struct {
	limit rate.Limit
	burst int

	mu        sync.Mutex
	keys      map[string]*rate.Limiter
	lastSweep time.Time
}

// NewFailures returns a Failures allowing perMinute failures a minute per
// key; perMinute must be above 0.
func NewFailures(perMinute int) *Failures {
	return &Failures{
		limit: rate.Limit(float64(perMinute) / 60),
		burst: perMinute,
		keys:  map[string]*rate.Limiter{},
	}
}

// Check implements FailureLimiter.
func (f *Failures) Check(_ context.Context, key string, now time.Time) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	lim := f.keys[key]
	if lim == nil || lim.TokensAt(now) >= 1 {
		return nil
	}
	// The wait until one whole token is back.
	r := lim.ReserveN(now, 1)
	wait := r.DelayFrom(now)
	r.CancelAt(now)
	return &Rejection{Limit: LimitAuthFailures, RetryAfter: wait}
}

// Fail implements FailureLimiter.
func (f *Failures) Fail(_ context.Context, key string, now time.Time) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if now.Sub(f.lastSweep) >= sweepEvery {
		f.sweep(now)
	}
	lim := f.keys[key]
	if lim == nil {
		lim = rate.NewLimiter(f.limit, f.burst)
		f.keys[key] = lim
	}
	lim.AllowN(now, 1)
	return nil
}

// sweep drops every key whose bucket is full again: it is the same as a
// key never seen.
func (f *Failures) sweep(now time.Time) {
	f.lastSweep = now
	for key, lim := range f.keys {
		if lim.TokensAt(now) >= float64(f.burst) {
			delete(f.keys, key)
		}
	}
}

// Keys returns how many keys f holds state for.
func (f *Failures) Keys() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.keys)
}
