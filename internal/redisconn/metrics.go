package redisconn

import (
	"context"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
)

// metrics are the connection's Prometheus metrics; the handler registers
// them beside its own.
type metrics struct {
	latency  *prometheus.HistogramVec
	errors   *prometheus.CounterVec
	failOpen *prometheus.CounterVec
}

func newMetrics() *metrics {
	return &metrics{
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "streamrelay_redis_roundtrip_seconds",
			Help:    "Redis round trips, by command (pipeline for a batch), including blocking reads.",
			Buckets: []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5},
		}, []string{"op"}),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "streamrelay_redis_errors_total",
			Help: "Redis commands that failed, by command and kind: unreachable (network, timeout), reply (an error answer) or pool_timeout (every connection busy for a second: this instance is overloaded).",
		}, []string{"op", "kind"}),
		failOpen: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "streamrelay_redis_fail_open_total",
			Help: "Decisions taken without Redis, by what: limits (this instance's own applied) or resume (a stream ran without a replay log).",
		}, []string{"what"}),
	}
}

// hook times every command and pipeline and feeds the outcome to the Conn.
type hook struct{ c *Conn }

// DialHook adds nothing: a failed dial fails the command that needed it.
func (h hook) DialHook(next redis.DialHook) redis.DialHook { return next }

func (h hook) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		start := time.Now()
		err := next(ctx, cmd)
		h.c.observe(strings.ToLower(cmd.Name()), start, err)
		return err
	}
}

func (h hook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		start := time.Now()
		err := next(ctx, cmds)
		h.c.observe("pipeline", start, err)
		return err
	}
}
