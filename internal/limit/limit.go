// Package limit admits streams: per caller a request rate (a token bucket
// from golang.org/x/time/rate) and a number of concurrent streams, and for
// the whole server a number of concurrent streams.
package limit

import (
	"cmp"
	"math"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// Config sets the limits. A zero field takes its default (see
// WithDefaults); Off, or any negative value, turns that limit off.
type Config struct {
	PerMinute int // requests a caller may start per minute
	Burst     int // requests a caller may start at once
	PerCaller int // streams a caller may have open at once
	Global    int // streams the server may have open at once
}

// Off turns a limit off.
const Off = -1

// WithDefaults returns c with each zero field set to its default: 60
// requests a minute in bursts of 20, 5 streams per caller, 5000 in all.
func (c Config) WithDefaults() Config {
	c.PerMinute = cmp.Or(c.PerMinute, 60)
	c.Burst = cmp.Or(c.Burst, 20)
	c.PerCaller = cmp.Or(c.PerCaller, 5)
	c.Global = cmp.Or(c.Global, 5000)
	return c
}

// Limit names, as Rejection.Limit reports them.
const (
	LimitRate      = "rate"
	LimitPerCaller = "caller_streams"
	LimitGlobal    = "global_streams"
)

// Rejection is the error Admit returns when a limit is reached.
type Rejection struct {
	Limit      string
	RetryAfter time.Duration
}

func (r *Rejection) Error() string { return "limit reached: " + r.Limit }

// RetryAfterSeconds is RetryAfter in whole seconds, at least 1.
func (r *Rejection) RetryAfterSeconds() int {
	return max(1, int(math.Ceil(r.RetryAfter.Seconds())))
}

// sweepEvery is how often Admit drops callers that hold no state worth
// keeping, so memory stays bounded however many callers come by.
const sweepEvery = time.Minute

// Limiter enforces a Config. It is safe for concurrent use.
type Limiter struct {
	cfg   Config
	limit rate.Limit

	mu        sync.Mutex
	callers   map[string]*caller
	open      int // streams open on the whole server
	lastSweep time.Time
}

type caller struct {
	rate *rate.Limiter
	open int
}

// New returns a Limiter for cfg, its zero fields set to their defaults.
func New(cfg Config) *Limiter {
	cfg = cfg.WithDefaults()
	if cfg.Burst < 0 {
		cfg.Burst = max(1, cfg.PerMinute)
	}
	l := rate.Inf
	if cfg.PerMinute > 0 {
		l = rate.Limit(float64(cfg.PerMinute) / 60)
	}
	return &Limiter{cfg: cfg, limit: l, callers: map[string]*caller{}}
}

// Admit admits one stream for the caller key at now, or returns a
// *Rejection. The caller must call release once the stream ends.
func (l *Limiter) Admit(key string, now time.Time) (release func(), err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if now.Sub(l.lastSweep) >= sweepEvery {
		l.sweep(now)
	}
	if l.cfg.Global > 0 && l.open >= l.cfg.Global {
		return nil, &Rejection{Limit: LimitGlobal, RetryAfter: time.Second}
	}
	c := l.callers[key]
	if c == nil {
		c = &caller{rate: rate.NewLimiter(l.limit, l.cfg.Burst)}
		l.callers[key] = c
	}
	if l.cfg.PerCaller > 0 && c.open >= l.cfg.PerCaller {
		return nil, &Rejection{Limit: LimitPerCaller, RetryAfter: time.Second}
	}
	if r := c.rate.ReserveN(now, 1); r.DelayFrom(now) > 0 {
		r.CancelAt(now)
		return nil, &Rejection{Limit: LimitRate, RetryAfter: r.DelayFrom(now)}
	}
	c.open++
	l.open++
	var once sync.Once
	return func() { once.Do(func() { l.release(c) }) }, nil
}

func (l *Limiter) release(c *caller) {
	l.mu.Lock()
	defer l.mu.Unlock()
	c.open--
	l.open--
}

// sweep drops every caller with no open stream and a full bucket: it is
// the same as a caller never seen.
func (l *Limiter) sweep(now time.Time) {
	l.lastSweep = now
	for key, c := range l.callers {
		if c.open == 0 && c.rate.TokensAt(now) >= float64(l.cfg.Burst) {
			delete(l.callers, key)
		}
	}
}

// Callers returns how many callers the Limiter holds state for.
func (l *Limiter) Callers() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.callers)
}

// Open returns the number of streams open on the whole server.
func (l *Limiter) Open() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.open
}
