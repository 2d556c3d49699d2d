// Command bench measures the relay's own cost per delta and per stream, side
// by side with the upstream itself (the floor) and with nginx proxying the
// upstream's SSE unparsed, in the same run. It starts a fake upstream (this
// binary again, in a process of its own), the server and nginx, loopback
// only, and writes the table as markdown and JSON.
//
//	go run ./internal/bench                       # the full matrix, a few minutes
//	go run ./internal/bench -levels 100:20ms:100 -targets server,nginx
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"
)

// defaultLevels is the matrix: C = 1, 100, 1000, 5000 streams of
// 100 deltas 20 ms apart, and 8000 idle-ish streams of 10 deltas 1 s apart.
const defaultLevels = "1:20ms:100,100:20ms:100,1000:20ms:100,5000:20ms:100,8000:1s:10"

func main() {
	maybeServeUpstream()
	levels := flag.String("levels", defaultLevels, "levels as C:D:K, comma-separated: C streams of K deltas, one every D")
	targetList := flag.String("targets", strings.Join(targets, ","), "targets, comma-separated: "+strings.Join(targets, ", "))
	runs := flag.Int("runs", 1, "measure each level this many times, the targets' order rotating; the table shows medians")
	ramp := flag.Duration("ramp", time.Second, "start the streams of a level evenly over this")
	limit := flag.Duration("timeout", 15*time.Minute, "give up on the whole run after this")
	serverBin := flag.String("server-bin", "", "the server binary (default: built from the module)")
	serverEnv := flag.String("server-env", "", "more environment for the server only, as KEY=VALUE, comma-separated (e.g. GOGC=50)")
	nginxBin := flag.String("nginx-bin", "", "the nginx binary (default: nginx on PATH, or /usr/sbin/nginx)")
	workers := flag.Int("nginx-workers", runtime.NumCPU(), "nginx worker processes")
	profileDir := flag.String("cpuprofile-dir", "", "write a CPU profile of the server per level into this directory")
	profileFor := flag.Duration("cpuprofile-for", 2*time.Second, "length of each CPU profile (whole seconds)")
	outMD := flag.String("out-md", "internal/bench/results/latest.md", "write the markdown table here (\"\" for none)")
	outJSON := flag.String("out-json", "internal/bench/results/latest.json", "write the JSON report here (\"\" for none)")
	outSVG := flag.String("out-svg", "docs/benchmark.svg", "draw the chart of the medians here, as SVG (\"\" for none)")
	chartFrom := flag.String("chart-from", "", "only redraw the chart (-out-svg) from this JSON report, and run nothing")
	flag.Parse()
	if *chartFrom != "" {
		rep, err := readReport(*chartFrom)
		if err != nil {
			fail(err)
		}
		write(*outSVG, rep.writeChart)
		return
	}

	lvs, err := parseLevels(*levels)
	if err != nil {
		fail(err)
	}
	cfg := Config{
		Levels:       lvs,
		Targets:      splitList(*targetList),
		Runs:         max(1, *runs),
		Ramp:         *ramp,
		ServerBin:    *serverBin,
		ServerEnv:    splitList(*serverEnv),
		NginxBin:     *nginxBin,
		NginxWorkers: max(1, *workers),
		ProfileDir:   *profileDir,
		ProfileFor:   *profileFor,
		Log:          os.Stderr,
	}
	for _, t := range cfg.Targets {
		if !slices.Contains(targets, t) {
			fail(fmt.Errorf("unknown target %q: want one of %s", t, strings.Join(targets, ", ")))
		}
	}
	if cfg.NginxBin == "" && slices.Contains(cfg.Targets, targetNginx) {
		if cfg.NginxBin, err = findNginx(); err != nil {
			fail(err)
		}
	}
	ctx, cancel := signal.NotifyContext(context.Background(), os.Interrupt)
	defer cancel()
	ctx, cancelTimeout := context.WithTimeout(ctx, *limit)
	defer cancelTimeout()

	results, err := Run(ctx, cfg)
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		if len(results) == 0 {
			os.Exit(1)
		}
	}
	rep := newReport(cfg, results, "go run ./internal/bench "+shellJoin(os.Args[1:]))
	rep.writeMarkdown(os.Stdout)
	write(*outMD, rep.writeMarkdown)
	write(*outJSON, rep.writeJSON)
	write(*outSVG, rep.writeChart)
	if err != nil {
		os.Exit(1)
	}
}

// write creates path, with its directory, and fills it with fill.
func write(path string, fill func(w io.Writer) error) {
	if path == "" {
		return
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		fail(err)
	}
	f, err := os.Create(path)
	if err != nil {
		fail(err)
	}
	if err := fill(f); err != nil {
		fail(err)
	}
	if err := f.Close(); err != nil {
		fail(err)
	}
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "bench:", err)
	os.Exit(2)
}

// shellJoin joins args for a shell, quoting those that are empty or hold
// a space, so that the report's command can be run again as written.
func shellJoin(args []string) string {
	quoted := make([]string, len(args))
	for i, a := range args {
		quoted[i] = a
		if a == "" || strings.ContainsAny(a, " \t\"'") {
			quoted[i] = strconv.Quote(a)
		}
	}
	return strings.Join(quoted, " ")
}

// splitList splits a comma-separated flag, dropping empty items.
func splitList(s string) []string {
	var out []string
	for _, item := range strings.Split(s, ",") {
		if item = strings.TrimSpace(item); item != "" {
			out = append(out, item)
		}
	}
	return out
}
