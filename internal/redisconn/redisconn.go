// Package redisconn is the connection to the Redis that instances share
// state through: the client from REDIS_URL, the key prefix, metrics of
// every round trip, and whether Redis is up.
package redisconn

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
)

// Timeouts for one command. A relay fails open while Redis is down, so a
// command must fail fast rather than hold up a stream.
const (
	dialTimeout = time.Second
	ioTimeout   = time.Second
	probeEvery  = time.Second // while Redis is down, how often to look again
	// blockingPool bounds the connections of Blocking: one per blocked
	// reader (a resume following a live stream) at a time.
	blockingPool = 1024
)

// Conn is a Redis client with a key prefix, metrics and a view of whether
// Redis is up. It is safe for concurrent use.
type Conn struct {
	*redis.Client
	// Blocking is for commands that wait on the server (XREAD BLOCK): a
	// pool of its own, so that they never take the connections the
	// limits and the writes need.
	Blocking *redis.Client
	// Writer is one connection for one goroutine's pipelined writes,
	// which a burst of requests on Client can then never starve.
	Writer  *redis.Client
	prefix  string
	log     *slog.Logger
	metrics *metrics

	down     atomic.Bool
	closed   chan struct{}
	probed   chan struct{} // closed when the prober has stopped
	closeOne sync.Once
}

// Open returns a Conn to the Redis at url (redis:// or rediss://), whose
// keys all start with prefix. It does not wait for Redis: an instance
// starts while Redis is down, and catches up when it comes.
func Open(url, prefix string, log *slog.Logger) (*Conn, error) {
	opts, err := redis.ParseURL(url)
	if err != nil {
		return nil, fmt.Errorf("REDIS_URL: %w", err)
	}
	opts.DialTimeout = dialTimeout
	opts.DialerRetries = 1
	opts.ReadTimeout = ioTimeout
	opts.WriteTimeout = ioTimeout
	opts.PoolTimeout = ioTimeout
	opts.MaxRetries = -1 // a retry would only delay failing open
	opts.DisableIdentity = true
	blocking, writer := *opts, *opts
	blocking.PoolSize = blockingPool
	writer.PoolSize = 1
	writer.PoolTimeout = 0 // the default: ReadTimeout + 1 s, the longest a pipeline waits for the one
	c := &Conn{
		Client:   redis.NewClient(opts),
		Blocking: redis.NewClient(&blocking),
		Writer:   redis.NewClient(&writer),
		prefix:   prefix,
		log:      log,
		metrics:  newMetrics(),
		closed:   make(chan struct{}),
		probed:   make(chan struct{}),
	}
	c.Client.AddHook(hook{c})
	c.Blocking.AddHook(hook{c})
	c.Writer.AddHook(hook{c})
	redis.SetLogger(clientLog{log})
	go c.probe()
	return c, nil
}

// clientLog takes go-redis's own messages (a failed dial, each time one
// is tried while Redis is down) into the server's log, in its format and
// at debug level: the Conn's warnings say once that Redis went down and
// came back. go-redis has one logger for the process.
type clientLog struct{ log *slog.Logger }

func (l clientLog) Printf(ctx context.Context, format string, v ...any) {
	l.log.DebugContext(ctx, "redis client", "message", fmt.Sprintf(format, v...))
}

// Close stops probing and closes the client.
func (c *Conn) Close() error {
	c.closeOne.Do(func() { close(c.closed) })
	<-c.probed
	return errors.Join(c.Writer.Close(), c.Blocking.Close(), c.Client.Close())
}

// Key returns the namespaced key made of parts joined by ':'.
func (c *Conn) Key(parts ...string) string {
	return c.prefix + strings.Join(parts, ":")
}

// Prefix returns the prefix every key starts with.
func (c *Conn) Prefix() string { return c.prefix }

// Up reports whether Redis answered the last command sent to it.
func (c *Conn) Up() bool { return !c.down.Load() }

// Check answers PING, for the readiness check.
func (c *Conn) Check(ctx context.Context) error {
	return c.Ping(ctx).Err()
}

// Collectors returns the Prometheus metrics of the connection.
func (c *Conn) Collectors() []prometheus.Collector {
	up := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "streamrelay_redis_up", Help: "1 while Redis answers, 0 while it is down."},
		func() float64 {
			if c.Up() {
				return 1
			}
			return 0
		})
	return []prometheus.Collector{c.metrics.latency, c.metrics.errors, c.metrics.failOpen, up}
}

// FailedOpen counts one decision taken without Redis because it is down,
// under what (a limit, say).
func (c *Conn) FailedOpen(what string) {
	c.metrics.failOpen.WithLabelValues(what).Inc()
}

// observe records one round trip, and notes Redis as down or up again.
func (c *Conn) observe(op string, start time.Time, err error) {
	c.metrics.latency.WithLabelValues(op).Observe(time.Since(start).Seconds())
	switch {
	case err == nil || isReply(err):
		if err != nil && !errors.Is(err, redis.Nil) && !redis.HasErrorPrefix(err, "NOSCRIPT") {
			c.metrics.errors.WithLabelValues(op, "reply").Inc()
		}
		c.markUp()
	case errors.Is(err, context.Canceled) && !isNetwork(err):
		// The caller gave up (a client left): says nothing about Redis.
	case errors.Is(err, redis.ErrPoolTimeout):
		// Every connection was busy for a second: this process is
		// overloaded, which says nothing about Redis either.
		c.metrics.errors.WithLabelValues(op, "pool_timeout").Inc()
	default:
		c.metrics.errors.WithLabelValues(op, "unreachable").Inc()
		c.markDown(err)
	}
}

// isReply reports whether err is Redis's own answer: Redis is up.
func isReply(err error) bool {
	var reply redis.Error
	return errors.As(err, &reply)
}

func isNetwork(err error) bool {
	var ne net.Error
	return errors.As(err, &ne)
}

func (c *Conn) markUp() {
	if c.down.CompareAndSwap(true, false) {
		c.log.Info("redis is reachable again: limits and resumable streams are shared again")
	}
}

// markDown notes Redis as down; probe looks again until it answers.
func (c *Conn) markDown(err error) {
	if c.down.CompareAndSwap(false, true) {
		c.log.Warn("redis is unreachable: each instance applies the limits on its own, and new streams can't be resumed, until it is back", "error", err)
	}
}

// probe pings Redis every probeEvery while it is down, until the Conn
// closes. The PING goes through the hook, which marks Redis up when it
// answers.
func (c *Conn) probe() {
	defer close(c.probed)
	tick := time.NewTicker(probeEvery)
	defer tick.Stop()
	for {
		select {
		case <-c.closed:
			return
		case <-tick.C:
		}
		if !c.Up() {
			ctx, cancel := context.WithTimeout(context.Background(), ioTimeout)
			c.Ping(ctx)
			cancel()
		}
	}
}
