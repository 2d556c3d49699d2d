package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"streamrelay/internal/redistest"
)

// The targets: the upstream itself (the floor), the relay, the relay
// keeping its replay logs in a redis-server of its own (REDIS_URL), and
// nginx proxying the upstream's SSE without parsing it.
const (
	targetDirect      = "direct"
	targetServer      = "server"
	targetServerRedis = "server+redis"
	targetNginx       = "nginx"
)

// targets are the known targets, in the default order.
var targets = []string{targetDirect, targetServer, targetServerRedis, targetNginx}

// Config is one benchmark run.
type Config struct {
	Levels       []Level
	Targets      []string
	Runs         int           // each level is measured this many times
	Ramp         time.Duration // streams start evenly over this
	ServerBin    string        // built from the module when empty
	ServerEnv    []string      // more KEY=VALUE settings for the server
	NginxBin     string        // found on PATH when empty
	RedisBin     string        // redis-server, found on PATH when empty
	NginxWorkers int
	ProfileDir   string        // when set, a CPU profile of the server per level
	ProfileFor   time.Duration // how long each profile runs
	Log          io.Writer     // progress; nil for none
}

// Result is one target at one level in one run.
type Result struct {
	Target string `json:"target"`
	Run    int    `json:"run"`
	C      int    `json:"c"`
	DMs    int64  `json:"d_ms"`
	K      int    `json:"k"`

	OK       int            `json:"streams_ok"`
	Failed   int            `json:"streams_failed"`
	Expected int64          `json:"deltas_expected"`
	Received int64          `json:"deltas_received"`
	Lost     int64          `json:"deltas_lost"`
	Errors   map[string]int `json:"errors,omitempty"`
	WallSec  float64        `json:"wall_s"`

	AddedP50Ms float64 `json:"added_p50_ms"`
	AddedP99Ms float64 `json:"added_p99_ms"`
	AddedMaxMs float64 `json:"added_max_ms"`
	TTFLP50Ms  float64 `json:"ttfl_p50_ms"`
	TTFLP99Ms  float64 `json:"ttfl_p99_ms"`

	IdleRSSKiB      int64   `json:"idle_rss_kib"`
	PeakRSSKiB      int64   `json:"peak_rss_kib"`
	PeakOpen        int64   `json:"open_streams_at_rss_per_stream"`
	RSSPerStreamKiB float64 `json:"rss_per_stream_kib"`

	CPUMs           float64 `json:"cpu_ms"`             // schedstat, all threads
	CPUTicksMs      float64 `json:"cpu_utime_stime_ms"` // /proc/pid/stat, 10 ms steps
	CPUPer1kDeltaMs float64 `json:"cpu_ms_per_1k_deltas"`
	UpstreamCPUMs   float64 `json:"upstream_cpu_ms"`
	// Redis's own CPU, for server+redis: beside the server's, not in it.
	RedisCPUMs           float64 `json:"redis_cpu_ms,omitempty"`
	RedisCPUPer1kDeltaMs float64 `json:"redis_cpu_ms_per_1k_deltas,omitempty"`
	ReadsPerDelta        float64 `json:"read_syscalls_per_delta"`
	WritesPerDelta       float64 `json:"write_syscalls_per_delta"`

	GoroutinesIdle  int `json:"goroutines_idle,omitempty"`
	GoroutinesPeak  int `json:"goroutines_peak,omitempty"`
	GoroutinesAfter int `json:"goroutines_after,omitempty"`
}

func (c *Config) logf(format string, args ...any) {
	if c.Log != nil {
		fmt.Fprintf(c.Log, format+"\n", args...)
	}
}

// Run measures every level against every target, Runs times over,
// rotating the targets' order from run to run.
func Run(ctx context.Context, cfg Config) ([]Result, error) {
	raiseNofile()
	tmp, err := os.MkdirTemp("", "streamrelay-bench-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(tmp)
	if (slices.Contains(cfg.Targets, targetServer) || slices.Contains(cfg.Targets, targetServerRedis)) && cfg.ServerBin == "" {
		cfg.logf("building the server")
		if cfg.ServerBin, err = buildServer(tmp); err != nil {
			return nil, err
		}
	}
	if slices.Contains(cfg.Targets, targetNginx) && cfg.NginxBin == "" {
		if cfg.NginxBin, err = findNginx(); err != nil {
			return nil, err
		}
	}
	if slices.Contains(cfg.Targets, targetServerRedis) && cfg.RedisBin == "" {
		if cfg.RedisBin, err = redistest.Lookup(); err != nil {
			return nil, err
		}
	}
	var results []Result
	for run := 1; run <= cfg.Runs; run++ {
		targets := rotate(cfg.Targets, run-1)
		for _, lv := range cfg.Levels {
			rs, err := runLevel(ctx, cfg, tmp, lv, targets)
			for i := range rs {
				rs[i].Run = run
			}
			results = append(results, rs...)
			if err != nil {
				return results, fmt.Errorf("run %d, %v: %w", run, lv, err)
			}
		}
	}
	return results, nil
}

func rotate(s []string, n int) []string {
	if len(s) == 0 {
		return nil
	}
	n %= len(s)
	return append(slices.Clone(s[n:]), s[:n]...)
}

// runLevel starts a fresh upstream for lv and measures each target in turn
// against it, each target in a fresh process.
func runLevel(ctx context.Context, cfg Config, tmp string, lv Level, targets []string) ([]Result, error) {
	up, upAddr, err := startUpstream(lv)
	if err != nil {
		return nil, err
	}
	defer up.kill()
	var results []Result
	for _, target := range targets {
		if err := ctx.Err(); err != nil {
			return results, err
		}
		r, err := measure(ctx, cfg, tmp, lv, target, up, upAddr)
		if err != nil {
			return results, fmt.Errorf("%s: %w", target, err)
		}
		cfg.logf("%-6s %-22v ok %d/%d lost %d  added p50 %.2f p99 %.2f ms  cpu %.1f ms/1k deltas  rss %.1f KiB/stream",
			target, lv, r.OK, lv.C, r.Lost, r.AddedP50Ms, r.AddedP99Ms, r.CPUPer1kDeltaMs, r.RSSPerStreamKiB)
		results = append(results, r)
	}
	return results, nil
}

// measure drives one level against one target and reads /proc around it.
func measure(ctx context.Context, cfg Config, tmp string, lv Level, target string, up *proc, upAddr string) (Result, error) {
	r := Result{Target: target, C: lv.C, DMs: lv.D.Milliseconds(), K: lv.K}
	var p, redis *proc
	var ep endpoint
	switch target {
	case targetDirect:
		p, ep = up, sseEndpoint(upAddr)
	case targetServer:
		srv, addr, err := startServer(ctx, cfg.ServerBin, upAddr, cfg.ServerEnv)
		if err != nil {
			return r, err
		}
		defer srv.kill()
		p, ep = srv, serverEndpoint(addr)
	case targetServerRedis:
		var redisAddr string
		var err error
		if redis, redisAddr, err = startRedis(ctx, cfg.RedisBin); err != nil {
			return r, err
		}
		defer redis.kill()
		env := append(slices.Clone(cfg.ServerEnv), "REDIS_URL=redis://"+redisAddr+"/0")
		srv, addr, err := startServer(ctx, cfg.ServerBin, upAddr, env)
		if err != nil {
			return r, err
		}
		defer srv.kill()
		p, ep = srv, serverEndpoint(addr)
	case targetNginx:
		dir := filepath.Join(tmp, fmt.Sprintf("nginx-%d-%d", lv.C, time.Now().UnixNano()))
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return r, err
		}
		ngx, addr, err := startNginx(ctx, cfg.NginxBin, dir, upAddr, cfg.NginxWorkers)
		if err != nil {
			return r, err
		}
		defer ngx.kill()
		p, ep = ngx, sseEndpoint(addr)
	default:
		return r, fmt.Errorf("unknown target %q", target)
	}
	client := newClient()
	defer client.CloseIdleConnections()
	// Four concurrent warm-up streams fill the server's upstream pool (two
	// idle connections per host), so the idle goroutine count is the one
	// to come back to.
	if err := warmUp(ctx, client, ep, 4); err != nil {
		return r, fmt.Errorf("warm-up: %w", err)
	}
	if p.pprofAddr != "" {
		n, err := stableGoroutines(ctx, p.pprofAddr)
		if err != nil {
			return r, err
		}
		r.GoroutinesIdle = n
	} else {
		time.Sleep(300 * time.Millisecond) // nginx's connections settle
	}
	before, upBefore, redisBefore := p.sample(), up.sample(), redis.sample()
	if before.readError != nil {
		return r, before.readError
	}
	r.IdleRSSKiB = before.rssKiB

	var open atomic.Int64
	var samples []rssSample
	stopSampling := make(chan struct{})
	var sampled sync.WaitGroup
	sampled.Add(1)
	go func() {
		defer sampled.Done()
		tick := time.NewTicker(50 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-stopSampling:
				return
			case <-tick.C:
			}
			n := open.Load()
			samples = append(samples, rssSample{open: n, rssKiB: p.sample().rssKiB})
		}
	}()
	isServer := target == targetServer || target == targetServerRedis
	if isServer && cfg.ProfileDir != "" {
		sampled.Add(1)
		go func() {
			defer sampled.Done()
			time.Sleep(cfg.Ramp)
			path := filepath.Join(cfg.ProfileDir, fmt.Sprintf("%s-c%d", target, lv.C))
			if err := cpuProfile(ctx, p.pprofAddr, cfg.ProfileFor, path+".cpu.pprof"); err != nil {
				cfg.logf("profile: %v", err)
			}
			// The heap with every stream open, and its MemStats in text.
			for _, q := range []string{"heap", "heap?debug=1", "goroutine?debug=1"} {
				name := path + "." + strings.NewReplacer("?debug=1", ".txt").Replace(q)
				if err := fetch(ctx, p.pprofAddr, q, name); err != nil {
					cfg.logf("profile: %v", err)
				}
			}
		}()
	}
	timeout := cfg.Ramp + time.Duration(lv.K)*lv.D*4 + 60*time.Second
	if isServer && p.pprofAddr != "" {
		// The server's goroutines at the plateau, once every stream started.
		sampled.Add(1)
		go func() {
			defer sampled.Done()
			select {
			case <-time.After(cfg.Ramp + lv.D*time.Duration(lv.K)/2):
				if n, err := goroutines(ctx, p.pprofAddr, true); err == nil {
					r.GoroutinesPeak = n
				}
			case <-stopSampling:
			}
		}()
	}
	load := drive(ctx, client, ep, lv, cfg.Ramp, timeout, &open)
	after, upAfter, redisAfter := p.sample(), up.sample(), redis.sample()
	close(stopSampling)
	sampled.Wait()
	if after.readError != nil {
		return r, after.readError
	}

	r.OK, r.Failed, r.Errors = load.ok, load.failed, load.errors
	r.Expected, r.Received = load.expected, load.received
	r.Lost = load.expected - load.received
	r.WallSec = load.wall.Seconds()
	slices.Sort(load.added)
	slices.Sort(load.ttfl)
	r.AddedP50Ms = ms(quantile(load.added, 0.50))
	r.AddedP99Ms = ms(quantile(load.added, 0.99))
	r.AddedMaxMs = ms(quantile(load.added, 1))
	r.TTFLP50Ms = ms(quantile(load.ttfl, 0.50))
	r.TTFLP99Ms = ms(quantile(load.ttfl, 0.99))

	samples = append(samples, rssSample{rssKiB: after.rssKiB})
	r.PeakRSSKiB, r.PeakOpen, r.RSSPerStreamKiB = perStream(samples, r.IdleRSSKiB)
	r.CPUMs = float64(after.cpuNanos-before.cpuNanos) / 1e6
	r.CPUTicksMs = float64(after.cpuTicks-before.cpuTicks) * 1000 / clockTicks
	r.UpstreamCPUMs = float64(upAfter.cpuNanos-upBefore.cpuNanos) / 1e6
	r.RedisCPUMs = float64(redisAfter.cpuNanos-redisBefore.cpuNanos) / 1e6
	if load.received > 0 {
		n := float64(load.received)
		r.CPUPer1kDeltaMs = r.CPUMs / n * 1000
		r.RedisCPUPer1kDeltaMs = r.RedisCPUMs / n * 1000
		r.ReadsPerDelta = float64(after.syscr-before.syscr) / n
		r.WritesPerDelta = float64(after.syscw-before.syscw) / n
	}

	if p.pprofAddr != "" {
		r.GoroutinesAfter = settleGoroutines(ctx, p.pprofAddr, r.GoroutinesIdle)
	}
	return r, nil
}

// rssSample is the RSS of the process under measurement and the number of
// streams open at one moment.
type rssSample struct {
	open   int64
	rssKiB int64
}

// perStream returns the peak RSS, and the RSS above idle per open stream
// while (nearly) all streams were open: the highest RSS among the samples
// with at least 95% of the most streams ever open, divided by the streams
// open then. A Go process keeps its memory after the streams close, so
// dividing the overall peak by the streams open at that moment would
// overstate it.
func perStream(samples []rssSample, idleKiB int64) (peakKiB, open int64, kib float64) {
	var most int64
	for _, s := range samples {
		peakKiB = max(peakKiB, s.rssKiB)
		most = max(most, s.open)
	}
	var best int64
	for _, s := range samples {
		if s.open > 0 && s.open*100 >= most*95 && s.rssKiB > best {
			best, open = s.rssKiB, s.open
		}
	}
	if open == 0 {
		return peakKiB, 0, 0
	}
	return peakKiB, open, float64(best-idleKiB) / float64(open)
}

// settleGoroutines waits up to 5 s for the server's goroutines to come back
// to idle and returns the last count.
// stableGoroutines returns the server's goroutine count once two readings
// 200 ms apart agree (at most 5 s): the warm-up's upstream connections go
// back to the pool, or close, a moment after their streams ended, later
// on a busy machine.
func stableGoroutines(ctx context.Context, pprofAddr string) (int, error) {
	n, err := goroutines(ctx, pprofAddr, false)
	for deadline := time.Now().Add(5 * time.Second); err == nil && time.Now().Before(deadline); {
		time.Sleep(200 * time.Millisecond)
		var m int
		if m, err = goroutines(ctx, pprofAddr, false); err == nil && m == n {
			return n, nil
		}
		n = m
	}
	return n, err
}

func settleGoroutines(ctx context.Context, pprofAddr string, idle int) int {
	n := -1
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); {
		var err error
		if n, err = goroutines(ctx, pprofAddr, false); err != nil || n <= idle {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	return n
}

// quantile returns the q-quantile of sorted, by the nearest-rank method.
func quantile(sorted []int64, q float64) int64 {
	if len(sorted) == 0 {
		return 0
	}
	i := int(q*float64(len(sorted))+0.5) - 1
	return sorted[min(max(i, 0), len(sorted)-1)]
}

func ms(ns int64) float64 { return float64(ns) / 1e6 }

// parseLevels reads "C:D:K,C:D:K", e.g. "1:20ms:100,8000:1s:10".
func parseLevels(s string) ([]Level, error) {
	var levels []Level
	for _, part := range strings.Split(s, ",") {
		var lv Level
		var d string
		f := strings.Split(strings.TrimSpace(part), ":")
		if len(f) != 3 {
			return nil, fmt.Errorf("level %q: want C:D:K", part)
		}
		if _, err := fmt.Sscan(f[0], &lv.C); err != nil || lv.C < 1 {
			return nil, fmt.Errorf("level %q: bad C", part)
		}
		d = f[1]
		var err error
		if lv.D, err = time.ParseDuration(d); err != nil || lv.D < 0 {
			return nil, fmt.Errorf("level %q: bad D", part)
		}
		if _, err := fmt.Sscan(f[2], &lv.K); err != nil || lv.K < 1 {
			return nil, fmt.Errorf("level %q: bad K", part)
		}
		levels = append(levels, lv)
	}
	return levels, nil
}
