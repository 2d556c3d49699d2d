package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"streamrelay/internal/redistest"
)

// proc is a process under measurement: one pid, or an nginx master and its
// workers.
type proc struct {
	name string
	cmd  *exec.Cmd
	pids []int
	stop func() // asks the process to stop
	// pprofAddr serves net/http/pprof (the server only).
	pprofAddr string
}

// kill stops the process: politely first, then SIGKILL after 10 s.
func (p *proc) kill() {
	if p == nil || p.cmd.Process == nil {
		return
	}
	if p.stop != nil {
		p.stop()
	} else {
		p.cmd.Process.Signal(syscall.SIGTERM)
	}
	done := make(chan struct{})
	go func() { p.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		p.cmd.Process.Kill()
		<-done
	}
}

// freeAddr returns a loopback address with a port that was free a moment ago.
func freeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

// buildServer builds the relay server from the module root into dir.
func buildServer(dir string) (string, error) {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	root := filepath.Dir(strings.TrimSpace(string(out)))
	bin := filepath.Join(dir, "streamrelay")
	cmd := exec.Command("go", "build", "-o", bin, ".")
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build: %v\n%s", err, out)
	}
	return bin, nil
}

// startServer starts the relay at bin, pointed at the upstream, and waits
// until /healthz answers. The environment is the bench's own, plus the
// settings a benchmark needs, plus extraEnv (GOGC=50, say).
func startServer(ctx context.Context, bin, upstreamAddr string, extraEnv []string) (*proc, string, error) {
	addr, err := freeAddr()
	if err != nil {
		return nil, "", err
	}
	pprofAddr, err := freeAddr()
	if err != nil {
		return nil, "", err
	}
	cmd := exec.Command(bin)
	cmd.Env = append(os.Environ(),
		"ADDR="+addr,
		"PPROF_ADDR="+pprofAddr,
		"OPENAI_API_KEY=bench",
		"OPENAI_BASE_URL=http://"+upstreamAddr+"/v1/",
		"UPSTREAM_RETRIES=0",
		"LOG_LEVEL=warn",
		// The load comes from one address: the server's per-caller and
		// total limits would refuse most of it.
		"RATE_LIMIT_PER_MINUTE=0",
		"STREAMS_PER_CALLER=0",
		"MAX_STREAMS=0",
	)
	cmd.Env = append(cmd.Env, extraEnv...)
	cmd.Stderr = os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return nil, "", err
	}
	p := &proc{name: "server", cmd: cmd, pids: []int{cmd.Process.Pid}, pprofAddr: pprofAddr}
	if err := waitHTTP(ctx, "http://"+addr+"/healthz"); err != nil {
		p.kill()
		return nil, "", fmt.Errorf("server did not start: %w", err)
	}
	if err := waitHTTP(ctx, "http://"+pprofAddr+"/debug/pprof/"); err != nil {
		p.kill()
		return nil, "", fmt.Errorf("server's pprof did not start: %w", err)
	}
	return p, addr, nil
}

// waitHTTP polls url until it answers 200, for at most 10 s.
func waitHTTP(ctx context.Context, url string) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		res, err := http.DefaultClient.Do(req)
		if err == nil {
			res.Body.Close()
			if res.StatusCode == http.StatusOK {
				return nil
			}
			err = errors.New(res.Status)
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// findNginx returns the nginx binary: on PATH, else Debian's place.
func findNginx() (string, error) {
	if p, err := exec.LookPath("nginx"); err == nil {
		return p, nil
	}
	if _, err := os.Stat("/usr/sbin/nginx"); err == nil {
		return "/usr/sbin/nginx", nil
	}
	return "", errors.New("nginx not found (apt-get install nginx)")
}

// nginxConf proxies everything to the upstream without buffering, as a
// streaming deployment would, sized for 8000+ concurrent streams (each takes
// two connections).
const nginxConf = `daemon off;
master_process on;
worker_processes %d;
worker_rlimit_nofile %d;
pid %[3]s/nginx.pid;
error_log %[3]s/error.log warn;

events {
    worker_connections %d;
}

http {
    access_log off;
    client_body_temp_path %[3]s/client_body;
    proxy_temp_path %[3]s/proxy;
    fastcgi_temp_path %[3]s/fastcgi;
    uwsgi_temp_path %[3]s/uwsgi;
    scgi_temp_path %[3]s/scgi;

    upstream fake {
        server %[5]s;
        keepalive 32;
    }

    server {
        listen %[6]s backlog=8192;
        location / {
            proxy_pass http://fake;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_buffering off;
            proxy_read_timeout 300s;
        }
    }
}
`

// startNginx starts nginx with a private prefix in dir, proxying to the
// upstream, and waits until it accepts connections.
func startNginx(ctx context.Context, bin, dir, upstreamAddr string, workers int) (*proc, string, error) {
	addr, err := freeAddr()
	if err != nil {
		return nil, "", err
	}
	nofile := nofileLimit()
	conns := max(1024, int(nofile)-64)
	conf := fmt.Sprintf(nginxConf, workers, nofile, dir, conns, upstreamAddr, addr)
	confPath := filepath.Join(dir, "nginx.conf")
	if err := os.WriteFile(confPath, []byte(conf), 0o644); err != nil {
		return nil, "", err
	}
	cmd := exec.Command(bin, "-p", dir, "-e", filepath.Join(dir, "error.log"), "-c", confPath)
	cmd.Stderr = os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return nil, "", err
	}
	p := &proc{name: "nginx", cmd: cmd, pids: []int{cmd.Process.Pid}}
	if err := waitDial(ctx, addr); err != nil {
		p.kill()
		log, _ := os.ReadFile(filepath.Join(dir, "error.log"))
		return nil, "", fmt.Errorf("nginx did not start: %w\n%s", err, log)
	}
	deadline := time.Now().Add(5 * time.Second)
	for len(p.pids) < 1+workers && time.Now().Before(deadline) {
		p.pids = append([]int{cmd.Process.Pid}, childrenOf(cmd.Process.Pid)...)
		time.Sleep(20 * time.Millisecond)
	}
	if len(p.pids) < 1+workers {
		p.kill()
		return nil, "", fmt.Errorf("nginx started %d workers, want %d", len(p.pids)-1, workers)
	}
	return p, addr, nil
}

// startRedis starts a redis-server on a free loopback port, without
// persistence, and waits until it accepts connections.
func startRedis(ctx context.Context, bin string) (*proc, string, error) {
	addr, err := freeAddr()
	if err != nil {
		return nil, "", err
	}
	cmd := redistest.Command(bin, addr, os.TempDir(), "")
	cmd.Stderr = os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return nil, "", err
	}
	p := &proc{name: "redis", cmd: cmd, pids: []int{cmd.Process.Pid}}
	if err := waitDial(ctx, addr); err != nil {
		p.kill()
		return nil, "", fmt.Errorf("redis-server did not start: %w", err)
	}
	return p, addr, nil
}

// waitDial waits until addr accepts a TCP connection, for at most 10 s.
func waitDial(ctx context.Context, addr string) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	var d net.Dialer
	for {
		c, err := d.DialContext(ctx, "tcp", addr)
		if err == nil {
			return c.Close()
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// childrenOf lists the pids whose parent is pid.
func childrenOf(pid int) []int {
	entries, _ := os.ReadDir("/proc")
	var kids []int
	for _, e := range entries {
		child, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if f := statFields(child); len(f) > 1 && f[1] == strconv.Itoa(pid) {
			kids = append(kids, child)
		}
	}
	return kids
}

// statFields returns the fields of /proc/pid/stat after the command name:
// f[0] is the state (field 3 of proc(5)), f[1] the ppid, f[11] utime and
// f[12] stime.
func statFields(pid int) []string {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return nil
	}
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return nil
	}
	return strings.Fields(string(b[i+1:]))
}

// usage is what /proc says about a set of processes at one moment.
type usage struct {
	cpuNanos  int64 // time on CPU of every thread, from schedstat
	cpuTicks  int64 // utime+stime, from stat, in clock ticks
	rssKiB    int64 // VmRSS summed
	hwmKiB    int64 // VmHWM summed
	syscr     int64 // read syscalls
	syscw     int64 // write syscalls
	readError error
}

// clockTicks is USER_HZ, 100 on every Linux that Go supports.
const clockTicks = 100

// sample reads /proc for every pid of p.
func (p *proc) sample() usage {
	var u usage
	if p == nil { // a target without this process
		return u
	}
	for _, pid := range p.pids {
		dir := "/proc/" + strconv.Itoa(pid)
		f := statFields(pid)
		if len(f) < 13 {
			u.readError = fmt.Errorf("%s: pid %d is gone", p.name, pid)
			continue
		}
		ut, _ := strconv.ParseInt(f[11], 10, 64)
		st, _ := strconv.ParseInt(f[12], 10, 64)
		u.cpuTicks += ut + st
		tasks, _ := os.ReadDir(dir + "/task")
		for _, t := range tasks {
			b, _ := os.ReadFile(dir + "/task/" + t.Name() + "/schedstat")
			if fs := strings.Fields(string(b)); len(fs) > 0 {
				n, _ := strconv.ParseInt(fs[0], 10, 64)
				u.cpuNanos += n
			}
		}
		status, _ := os.ReadFile(dir + "/status")
		u.rssKiB += kibField(status, "VmRSS:")
		u.hwmKiB += kibField(status, "VmHWM:")
		io, _ := os.ReadFile(dir + "/io")
		u.syscr += kibField(io, "syscr:")
		u.syscw += kibField(io, "syscw:")
	}
	return u
}

// kibField returns the number after name in a /proc file of "name: value"
// lines.
func kibField(b []byte, name string) int64 {
	i := bytes.Index(b, []byte(name))
	if i < 0 {
		return 0
	}
	fs := strings.Fields(string(b[i+len(name):]))
	if len(fs) == 0 {
		return 0
	}
	n, _ := strconv.ParseInt(fs[0], 10, 64)
	return n
}

// goroutines returns the server's goroutine count from its pprof
// listing. Without pooled, it leaves out the read and write loops of
// upstream connections: between levels those are the idle ones the
// transport keeps (up to two, two goroutines each), whose number depends
// on whether a stream's last bytes came before its body was closed, not
// on any leak. Each call opens a new connection, so the count always
// includes the one goroutine serving it.
func goroutines(ctx context.Context, pprofAddr string, pooled bool) (int, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+pprofAddr+"/debug/pprof/goroutine?debug=1", nil)
	req.Close = true
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	defer res.Body.Close()
	body, err := io.ReadAll(res.Body)
	if err != nil {
		return 0, err
	}
	return countGoroutines(string(body), pooled)
}

// countGoroutines reads a goroutine?debug=1 listing: groups of "N @ ..."
// and their "#" frames, separated by blank lines.
func countGoroutines(listing string, pooled bool) (int, error) {
	head, groups, _ := strings.Cut(listing, "\n")
	total, ok := strings.CutPrefix(head, "goroutine profile: total ")
	if !ok {
		return 0, fmt.Errorf("unexpected goroutine profile: %q", head)
	}
	n, err := strconv.Atoi(total)
	if err != nil || pooled {
		return n, err
	}
	for _, g := range strings.Split(groups, "\n\n") {
		if !strings.Contains(g, "net/http.(*persistConn).readLoop") && !strings.Contains(g, "net/http.(*persistConn).writeLoop") {
			continue
		}
		count, _, _ := strings.Cut(strings.TrimSpace(g), " @")
		c, err := strconv.Atoi(count)
		if err != nil {
			return 0, fmt.Errorf("unexpected goroutine group %q", count)
		}
		n -= c
	}
	return n, nil
}

// cpuProfile fetches a CPU profile of d from the server into path.
func cpuProfile(ctx context.Context, pprofAddr string, d time.Duration, path string) error {
	secs := max(1, int(d.Seconds()))
	ctx, cancel := context.WithTimeout(ctx, time.Duration(secs+30)*time.Second)
	defer cancel()
	return fetch(ctx, pprofAddr, "profile?seconds="+strconv.Itoa(secs), path)
}

// fetch saves the server's /debug/pprof/<query> into path.
func fetch(ctx context.Context, pprofAddr, query, path string) error {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	url := "http://" + pprofAddr + "/debug/pprof/" + query
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		return errors.New("profile: " + res.Status)
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, res.Body); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// raiseNofile raises this process's open-file limit to its hard limit, so
// that children (nginx, the server, the upstream) inherit it too.
func raiseNofile() {
	var lim syscall.Rlimit
	if syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim) != nil {
		return
	}
	lim.Cur = lim.Max
	syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim)
}

// nofileLimit returns the current open-file limit.
func nofileLimit() uint64 {
	var lim syscall.Rlimit
	if syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim) != nil {
		return 1024
	}
	return lim.Cur
}
