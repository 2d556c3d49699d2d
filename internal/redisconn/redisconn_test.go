package redisconn

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"streamrelay/internal/redistest"
)

// TestPoolTimeoutIsNotDown takes every connection of the pool with
// blocking commands: the next command times out waiting for one, which
// is counted as pool_timeout and leaves Redis up, since Redis answers.
func TestPoolTimeoutIsNotDown(t *testing.T) {
	srv := redistest.Start(t)
	c, err := Open(srv.URL(), "test:", slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx := context.Background()
	size := c.Client.Options().PoolSize
	var held sync.WaitGroup
	for range size {
		held.Add(1)
		go func() {
			defer held.Done()
			c.BLPop(ctx, 3*time.Second, c.Key("nothing"))
		}()
	}
	defer held.Wait()
	for deadline := time.Now().Add(5 * time.Second); ; {
		if st := c.Client.PoolStats(); int(st.TotalConns) == size && st.IdleConns == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("pool %+v: the %d blocking commands did not take every connection", c.Client.PoolStats(), size)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err := c.Ping(ctx).Err(); !errors.Is(err, redis.ErrPoolTimeout) {
		t.Fatalf("PING with every connection taken: %v, want a pool timeout", err)
	}
	if !c.Up() {
		t.Error("a pool timeout marked Redis as down")
	}
	if n := counter(t, c, "streamrelay_redis_errors_total", "pool_timeout", "ping"); n != 1 {
		t.Errorf(`streamrelay_redis_errors_total{op="ping",kind="pool_timeout"} = %v, want 1`, n)
	}
}

// counter returns the value of the counter name whose label values are
// values, in the order of the labels' names (kind before op), from c's
// collectors.
func counter(t *testing.T, c *Conn, name string, values ...string) float64 {
	t.Helper()
	reg := prometheus.NewRegistry()
	reg.MustRegister(c.Collectors()...)
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
	metrics:
		for _, m := range f.GetMetric() {
			labels := m.GetLabel()
			if len(labels) != len(values) {
				continue
			}
			for i, l := range labels {
				if l.GetValue() != values[i] {
					continue metrics
				}
			}
			return m.GetCounter().GetValue()
		}
	}
	return 0
}
