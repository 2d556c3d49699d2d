package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strings"
	"time"
)

// Report is what the benchmark writes: every measurement, the medians over
// runs and the server/nginx ratios.
type Report struct {
	Date    string   `json:"date"`
	Command string   `json:"command"`
	Machine Machine  `json:"machine"`
	Runs    int      `json:"runs"`
	Medians []Result `json:"medians"`
	Ratios  []Ratio  `json:"ratios"`
	Results []Result `json:"results"`
}

// Machine says where the figures were measured.
type Machine struct {
	CPUs     int    `json:"cpus"`
	CPUModel string `json:"cpu_model"`
	MemTotal string `json:"mem_total"`
	Go       string `json:"go"`
	Nginx    string `json:"nginx,omitempty"`
}

// Ratio is server divided by nginx at one level: the median of the ratios
// measured within each run.
type Ratio struct {
	C               int     `json:"c"`
	DMs             int64   `json:"d_ms"`
	K               int     `json:"k"`
	CPUPerDelta     float64 `json:"cpu_per_delta"`
	MemPerStream    float64 `json:"mem_per_stream"`
	AddedLatencyP99 float64 `json:"added_latency_p99"`
	// CPUWithRedis is server+redis's CPU per delta over the server's (not
	// counting Redis's own), where both ran.
	CPUWithRedis float64 `json:"cpu_per_delta_with_redis_over_server,omitempty"`
}

func newReport(cfg Config, results []Result, command string) Report {
	rep := Report{
		Date:    time.Now().Format("2006-01-02 15:04 MST"),
		Command: command,
		Machine: machine(cfg.NginxBin),
		Runs:    cfg.Runs,
		Results: results,
	}
	for _, lv := range cfg.Levels {
		for _, t := range cfg.Targets {
			rs := pick(results, lv, t)
			if len(rs) > 0 {
				rep.Medians = append(rep.Medians, median(rs))
			}
		}
		if ratio, ok := ratios(results, lv); ok {
			rep.Ratios = append(rep.Ratios, ratio)
		}
	}
	return rep
}

func pick(results []Result, lv Level, target string) []Result {
	var rs []Result
	for _, r := range results {
		if r.Target == target && r.C == lv.C && r.K == lv.K && r.DMs == lv.D.Milliseconds() {
			rs = append(rs, r)
		}
	}
	return rs
}

// median folds runs into one row: the median of each figure, except the
// counts of failures and losses, which take the worst run.
func median(rs []Result) Result {
	m := rs[0]
	m.Run = 0
	m.Errors = nil
	f := func(get func(Result) float64) float64 {
		v := make([]float64, len(rs))
		for i, r := range rs {
			v[i] = get(r)
		}
		return medianOf(v)
	}
	m.AddedP50Ms = f(func(r Result) float64 { return r.AddedP50Ms })
	m.AddedP99Ms = f(func(r Result) float64 { return r.AddedP99Ms })
	m.AddedMaxMs = f(func(r Result) float64 { return r.AddedMaxMs })
	m.TTFLP50Ms = f(func(r Result) float64 { return r.TTFLP50Ms })
	m.TTFLP99Ms = f(func(r Result) float64 { return r.TTFLP99Ms })
	m.PeakRSSKiB = int64(f(func(r Result) float64 { return float64(r.PeakRSSKiB) }))
	m.IdleRSSKiB = int64(f(func(r Result) float64 { return float64(r.IdleRSSKiB) }))
	m.RSSPerStreamKiB = f(func(r Result) float64 { return r.RSSPerStreamKiB })
	m.CPUMs = f(func(r Result) float64 { return r.CPUMs })
	m.CPUTicksMs = f(func(r Result) float64 { return r.CPUTicksMs })
	m.CPUPer1kDeltaMs = f(func(r Result) float64 { return r.CPUPer1kDeltaMs })
	m.UpstreamCPUMs = f(func(r Result) float64 { return r.UpstreamCPUMs })
	m.RedisCPUMs = f(func(r Result) float64 { return r.RedisCPUMs })
	m.RedisCPUPer1kDeltaMs = f(func(r Result) float64 { return r.RedisCPUPer1kDeltaMs })
	m.ReadsPerDelta = f(func(r Result) float64 { return r.ReadsPerDelta })
	m.WritesPerDelta = f(func(r Result) float64 { return r.WritesPerDelta })
	m.WallSec = f(func(r Result) float64 { return r.WallSec })
	for _, r := range rs {
		m.OK = min(m.OK, r.OK)
		m.Failed = max(m.Failed, r.Failed)
		m.Lost = max(m.Lost, r.Lost)
		m.GoroutinesIdle = max(m.GoroutinesIdle, r.GoroutinesIdle)
		m.GoroutinesPeak = max(m.GoroutinesPeak, r.GoroutinesPeak)
		m.GoroutinesAfter = max(m.GoroutinesAfter, r.GoroutinesAfter)
		if r.GoroutinesAfter-r.GoroutinesIdle > m.GoroutinesAfter-m.GoroutinesIdle {
			m.GoroutinesIdle, m.GoroutinesAfter = r.GoroutinesIdle, r.GoroutinesAfter
		}
	}
	return m
}

func medianOf(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	slices.Sort(v)
	if n := len(v); n%2 == 0 {
		return (v[n/2-1] + v[n/2]) / 2
	}
	return v[len(v)/2]
}

// ratios divides the server's figures by nginx's, and server+redis's CPU
// by the server's, within each run, and returns the medians; ok is false
// unless the server ran at lv with nginx or server+redis.
func ratios(results []Result, lv Level) (Ratio, bool) {
	srv := pick(results, lv, targetServer)
	var cpu, mem, p99, redis []float64
	sameRun(srv, pick(results, lv, targetNginx), func(s, n Result) {
		cpu = append(cpu, div(s.CPUPer1kDeltaMs, n.CPUPer1kDeltaMs))
		mem = append(mem, div(s.RSSPerStreamKiB, n.RSSPerStreamKiB))
		p99 = append(p99, div(s.AddedP99Ms, n.AddedP99Ms))
	})
	sameRun(srv, pick(results, lv, targetServerRedis), func(s, r Result) {
		redis = append(redis, div(r.CPUPer1kDeltaMs, s.CPUPer1kDeltaMs))
	})
	if len(cpu) == 0 && len(redis) == 0 {
		return Ratio{}, false
	}
	return Ratio{C: lv.C, DMs: lv.D.Milliseconds(), K: lv.K,
		CPUPerDelta: medianOf(cpu), MemPerStream: medianOf(mem), AddedLatencyP99: medianOf(p99),
		CPUWithRedis: medianOf(redis)}, true
}

// sameRun calls f for each pair of results, one from a and one from b,
// measured in the same run.
func sameRun(a, b []Result, f func(a, b Result)) {
	for _, x := range a {
		for _, y := range b {
			if x.Run == y.Run {
				f(x, y)
			}
		}
	}
}

func div(a, b float64) float64 {
	if b == 0 {
		return 0
	}
	return a / b
}

// machine describes this machine from /proc and the tools' versions.
func machine(nginxBin string) Machine {
	m := Machine{CPUs: runtime.NumCPU(), Go: runtime.Version()}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				m.CPUModel = strings.TrimSpace(v)
				break
			}
		}
	}
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		kib := kibField(b, "MemTotal:")
		m.MemTotal = fmt.Sprintf("%.1f GiB", float64(kib)/(1<<20))
	}
	if nginxBin != "" {
		out, _ := exec.Command(nginxBin, "-v").CombinedOutput()
		m.Nginx = strings.TrimPrefix(strings.TrimSpace(string(out)), "nginx version: ")
	}
	return m
}

// readReport reads a report that writeJSON wrote.
func readReport(path string) (Report, error) {
	var rep Report
	data, err := os.ReadFile(path)
	if err == nil {
		err = json.Unmarshal(data, &rep)
	}
	return rep, err
}

func (rep Report) writeJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(rep)
}

// writeMarkdown writes the tables: per level and relay, then the ratios of
// the server to nginx.
func (rep Report) writeMarkdown(w io.Writer) error {
	var b strings.Builder
	p := func(format string, args ...any) { fmt.Fprintf(&b, format+"\n", args...) }
	m := rep.Machine
	p("Measured %s on %d CPUs (%s), %s RAM, %s, nginx %s.", rep.Date, m.CPUs, m.CPUModel, m.MemTotal, m.Go, orDash(m.Nginx))
	p("Command: `%s`.", rep.Command)
	if rep.Runs > 1 {
		p("Each figure is the median of %d runs; ok is the worst run's, failed, lost and goroutines after the worst run's.", rep.Runs)
	}
	p("")
	p("| C | D | K | relay | ok | failed | lost | added p50 / p99 / max (ms) | first line p50 / p99 (ms) | peak RSS (MiB) | RSS per stream (KiB) | CPU per 1k deltas (ms) | Redis's CPU per 1k deltas (ms) | writes per delta | goroutines idle → after |")
	p("|---:|---:|---:|---|---:|---:|---:|---|---|---:|---:|---:|---:|---:|---|")
	for _, r := range rep.Medians {
		g, redis := "–", "–"
		if r.Target == targetServer || r.Target == targetServerRedis {
			g = fmt.Sprintf("%d → %d", r.GoroutinesIdle, r.GoroutinesAfter)
		}
		if r.Target == targetServerRedis {
			redis = fmt.Sprintf("%.1f", r.RedisCPUPer1kDeltaMs)
		}
		p("| %d | %s | %d | %s | %d | %d | %d | %.2f / %.2f / %.1f | %.1f / %.1f | %.1f | %.1f | %.1f | %s | %.2f | %s |",
			r.C, time.Duration(r.DMs)*time.Millisecond, r.K, r.Target, r.OK, r.Failed, r.Lost,
			r.AddedP50Ms, r.AddedP99Ms, r.AddedMaxMs, r.TTFLP50Ms, r.TTFLP99Ms,
			float64(r.PeakRSSKiB)/1024, r.RSSPerStreamKiB, r.CPUPer1kDeltaMs, redis, r.WritesPerDelta, g)
	}
	if len(rep.Ratios) > 0 {
		p("")
		p("Ratios measured within each run, medians (lower is better for the server): the server over nginx,")
		p("and the server with its replay logs on Redis over the server alone (Redis's own CPU not counted):")
		p("")
		p("| C | D | K | CPU per delta | memory per stream | p99 added latency | CPU per delta, server+redis / server |")
		p("|---:|---:|---:|---:|---:|---:|---:|")
		for _, r := range rep.Ratios {
			p("| %d | %s | %d | %s | %s | %s | %s |", r.C, time.Duration(r.DMs)*time.Millisecond, r.K,
				orNone(r.CPUPerDelta), orNone(r.MemPerStream), orNone(r.AddedLatencyP99), orNone(r.CPUWithRedis))
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// orNone formats a ratio, or a dash where it was not measured.
func orNone(v float64) string {
	if v == 0 {
		return "–"
	}
	return fmt.Sprintf("%.2f", v)
}

func orDash(s string) string {
	if s == "" {
		return "–"
	}
	return s
}
