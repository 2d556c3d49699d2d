package limit

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-redis/redis_rate/v10"
	"github.com/redis/go-redis/v9"

	"streamrelay/internal/redisconn"
)

// Admitter admits streams: Limiter in one process, Shared across instances.
type Admitter interface {
	// Admit admits one stream for the caller key at now, or returns a
	// *Rejection. The caller must call release once the stream ends.
	Admit(key string, now time.Time) (release func(), err error)
	// Open returns the number of streams this process has open.
	Open() int
}

// DefaultLease is how long a stream's slot outlives an instance that
// stopped renewing it: one that crashed.
const DefaultLease = 30 * time.Second

// Shared enforces a Config across every instance on one Redis: the rate
// with redis_rate's GCRA, the stream caps as leases in sorted sets, scored
// by expiry and renewed while the stream lives. While Redis is down it
// fails open to a Limiter of its own, per instance. It is safe for
// concurrent use.
type Shared struct {
	conn   *redisconn.Conn
	cfg    Config
	lease  time.Duration
	rate   *redis_rate.Limiter
	limit  redis_rate.Limit
	local  *Limiter
	id     string // this instance, in lease names
	serial atomic.Uint64

	mu     sync.Mutex
	leases map[string]string // lease name -> caller key, for renewal
	// renewing is held for writing while a renewal is in flight, so a
	// release can't be overtaken by a renewal that puts its lease back.
	renewing sync.RWMutex
	renewals atomic.Uint64 // renewals done, for tests to wait on

	stop    chan struct{}
	done    chan struct{}
	stopped sync.Once
}

// NewShared returns a Shared for cfg on conn, whose leases last lease
// (DefaultLease if 0), and starts renewing them. Close stops it.
func NewShared(conn *redisconn.Conn, cfg Config, lease time.Duration) *Shared {
	if lease <= 0 {
		lease = DefaultLease
	}
	local := New(cfg) // also fills in the default burst
	id := make([]byte, 6)
	rand.Read(id)
	s := &Shared{
		conn:   conn,
		cfg:    local.cfg,
		lease:  lease,
		rate:   redis_rate.NewLimiter(prefixed{conn.Client, conn.Prefix()}),
		limit:  redis_rate.Limit{Rate: local.cfg.PerMinute, Burst: local.cfg.Burst, Period: time.Minute},
		local:  local,
		id:     hex.EncodeToString(id),
		leases: map[string]string{},
		stop:   make(chan struct{}),
		done:   make(chan struct{}),
	}
	go s.renewLoop()
	return s
}

// Close stops renewing. Leases still held expire within the lease period.
func (s *Shared) Close() {
	s.stopped.Do(func() { close(s.stop) })
	<-s.done
}

// Open returns the number of streams this instance has open: on its
// leases, and admitted by its own Limiter while Redis was down.
func (s *Shared) Open() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.leases) + s.local.Open()
}

// Admit admits one stream for the caller key, or returns a *Rejection.
// While Redis is down, it asks this instance's own Limiter instead.
func (s *Shared) Admit(key string, now time.Time) (release func(), err error) {
	if s.conn.Up() {
		release, err := s.admit(key)
		if err == nil || isRejection(err) {
			return release, err
		}
	}
	s.conn.FailedOpen("limits")
	return s.local.Admit(key, now)
}

func isRejection(err error) bool {
	var r *Rejection
	return errors.As(err, &r)
}

// admit takes a lease on a stream slot, then a request from the rate.
func (s *Shared) admit(key string) (func(), error) {
	ctx := context.Background() // the client's own timeouts bound each call
	var name string
	if s.cfg.Global > 0 || s.cfg.PerCaller > 0 {
		name = s.id + ":" + strconv.FormatUint(s.serial.Add(1), 36)
		if err := s.take(ctx, key, name); err != nil {
			return nil, err
		}
	}
	if s.cfg.PerMinute > 0 {
		res, err := s.rate.Allow(ctx, key, s.limit) // key: rate:<caller>, prefixed
		if err == nil && res.Allowed == 0 {
			err = &Rejection{Limit: LimitRate, RetryAfter: res.RetryAfter}
		}
		if err != nil {
			if name != "" {
				s.drop(key, name)
			}
			return nil, err
		}
	}
	if name == "" {
		return func() {}, nil
	}
	s.mu.Lock()
	s.leases[name] = key
	s.mu.Unlock()
	var once sync.Once
	return func() { once.Do(func() { s.release(key, name) }) }, nil
}

// takeScript checks the caps and adds a lease to the global set and the
// caller's, both scored by expiry in Redis's clock. It returns 0 when
// admitted, 1 at the global cap, 2 at the caller's.
var takeScript = redis.NewScript(`
local t = redis.call('TIME')
local now = t[1] * 1000 + math.floor(t[2] / 1000)
local lease = tonumber(ARGV[3])
for i = 1, 2 do redis.call('ZREMRANGEBYSCORE', KEYS[i], '-inf', now) end
local global, caller = tonumber(ARGV[1]), tonumber(ARGV[2])
if global > 0 and redis.call('ZCARD', KEYS[1]) >= global then return 1 end
if caller > 0 and redis.call('ZCARD', KEYS[2]) >= caller then return 2 end
for i = 1, 2 do
  redis.call('ZADD', KEYS[i], now + lease, ARGV[4])
  redis.call('PEXPIRE', KEYS[i], 2 * lease)
end
return 0`)

// take adds the lease name for the caller key, or returns a *Rejection.
func (s *Shared) take(ctx context.Context, key, name string) error {
	code, err := takeScript.Run(ctx, s.conn, []string{s.globalKey(), s.callerKey(key)},
		s.cfg.Global, s.cfg.PerCaller, s.lease.Milliseconds(), name).Int()
	switch {
	case err != nil:
		return err
	case code == 1:
		return &Rejection{Limit: LimitGlobal, RetryAfter: time.Second}
	case code == 2:
		return &Rejection{Limit: LimitPerCaller, RetryAfter: time.Second}
	}
	return nil
}

func (s *Shared) globalKey() string           { return s.conn.Key("streams") }
func (s *Shared) callerKey(key string) string { return s.conn.Key("streams", key) }

// release ends the lease name: at once, not at its expiry.
func (s *Shared) release(key, name string) {
	s.mu.Lock()
	delete(s.leases, name)
	s.mu.Unlock()
	s.drop(key, name)
}

// drop removes the lease name from Redis. If Redis is down, the lease
// expires on its own.
func (s *Shared) drop(key, name string) {
	s.renewing.RLock()
	defer s.renewing.RUnlock()
	pipe := s.conn.Pipeline()
	pipe.ZRem(context.Background(), s.globalKey(), name)
	pipe.ZRem(context.Background(), s.callerKey(key), name)
	pipe.Exec(context.Background())
}
