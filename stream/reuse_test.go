package stream

import (
	"context"
	"net"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"streamrelay/internal/upstreamtest"
)

// TestUpstreamConnectionReusedAfterDone relays five streams in a row from
// upstreams that end with [DONE] and then end their body, at once or in a
// packet of its own a little later: all five go over one connection. An
// upstream that keeps its body open after [DONE] still completes each
// stream within a moment, on a new connection each time.
func TestUpstreamConnectionReusedAfterDone(t *testing.T) {
	answer := upstreamtest.Events(upstreamtest.Role(), upstreamtest.Content("a"), upstreamtest.Done)
	tests := map[string]struct {
		steps []upstreamtest.Step
		dials int32
	}{
		"body ends with [DONE]":       {answer, 1},
		"body ends 2 ms after [DONE]": {append(answer, upstreamtest.Pause(2*time.Millisecond)), 1},
		"body kept open":              {append(answer, upstreamtest.Hang()), 5},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			up := upstreamtest.New(tt.steps...)
			defer up.Close()
			var dials atomic.Int32
			tr := up.Client().Transport.(*http.Transport).Clone()
			dialer := &net.Dialer{}
			tr.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
				dials.Add(1)
				return dialer.DialContext(ctx, network, addr)
			}
			defer tr.CloseIdleConnections()
			open := func(ctx context.Context) (*http.Response, error) {
				req, err := http.NewRequestWithContext(ctx, http.MethodPost, up.URL, nil)
				if err != nil {
					return nil, err
				}
				return tr.RoundTrip(req)
			}
			for i := range 5 {
				began := time.Now()
				rec := newFlushRecorder()
				res := testRelay().Run(context.Background(), rec, open)
				if res.Outcome != Completed || rec.Body.String() != "a\n" {
					t.Fatalf("stream %d: %v, %v, body %q; want completed with a", i, res.Outcome, res.Err, rec.Body.String())
				}
				if took := time.Since(began); took > time.Second {
					t.Errorf("stream %d took %v", i, took)
				}
			}
			if n := dials.Load(); n != tt.dials {
				t.Errorf("5 streams dialled the upstream %d times, want %d", n, tt.dials)
			}
		})
	}
}
