// Command streamrelay relays an OpenAI-compatible model's streamed answer to
// HTTP clients as plain-text lines, one line per delta.
//
// Every setting is an environment variable and a flag (streamrelay -h lists
// them). With neither OPENAI_API_KEY nor OPENAI_BASE_URL set, it runs a
// built-in demo upstream.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	stdlog "log"
	"log/slog"
	"net"
	"net/http"
	_ "net/http/pprof" // served only on PPROF_ADDR
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"

	"streamrelay/frontend"
	"streamrelay/handler"
	"streamrelay/internal/demo"
	"streamrelay/internal/limit"
	"streamrelay/internal/redisconn"
	"streamrelay/resume/redisstore"
)

func main() {
	cfg, cmd, err := loadConfig(os.Args[1:], os.Getenv)
	switch {
	case errors.Is(err, flag.ErrHelp):
		printUsage(os.Stdout)
		return
	case err != nil:
		fmt.Fprintf(os.Stderr, "streamrelay: bad configuration: %v\n(streamrelay -h lists every setting)\n", err)
		os.Exit(2)
	case cmd.version:
		fmt.Println(version())
		return
	case cmd.printTable:
		fmt.Print(configTable())
		return
	}
	log := newLogger(cfg)
	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		log.Error("cannot listen", "addr", cfg.Addr, "error", err)
		os.Exit(1)
	}
	stop, force := shutdownSignals()
	if err := run(cfg, log, ln, stop, force); err != nil {
		log.Error("streamrelay stopped", "error", err)
		os.Exit(1)
	}
}

// shutdownSignals returns two channels: stop, closed on the first SIGINT
// or SIGTERM, and force, closed on the next one.
func shutdownSignals() (stop, force <-chan struct{}) {
	signals := make(chan os.Signal, 2)
	signal.Notify(signals, os.Interrupt, syscall.SIGTERM)
	first, second := make(chan struct{}), make(chan struct{})
	go func() {
		<-signals
		close(first)
		<-signals
		close(second)
	}()
	return first, second
}

func newLogger(cfg config) *slog.Logger {
	var level slog.Level
	level.UnmarshalText([]byte(cfg.LogLevel))
	opts := &slog.HandlerOptions{Level: level}
	if cfg.LogFormat == "json" {
		return slog.New(slog.NewJSONHandler(os.Stderr, opts))
	}
	return slog.New(slog.NewTextHandler(os.Stderr, opts))
}

// errForced is what run returns when force cut the drain short.
var errForced = errors.New("stopped by a second signal: streams in flight were cut")

// run serves on ln until stop is closed, then drains: streams in flight may
// finish until cfg.DrainTimeout, after which they are cancelled. New
// connections are refused from stop on. If force is closed during the
// drain, the streams are cut at once and run returns errForced.
func run(cfg config, log *slog.Logger, ln net.Listener, stop, force <-chan struct{}) error {
	defer ln.Close()
	baseURL := cfg.BaseURL
	if cfg.Demo {
		url, closeDemo, err := startDemo(cfg.DemoDelay, log)
		if err != nil {
			return err
		}
		defer closeDemo()
		baseURL = url
		log.Warn("no OPENAI_API_KEY or OPENAI_BASE_URL: answering with the built-in DEMO model, not a real one", "demo_delay", cfg.DemoDelay)
	}
	cfg.Logger = log
	if cfg.RedisURL != "" {
		closeShared, err := share(&cfg, log)
		if err != nil {
			return err
		}
		defer closeShared()
	}
	hc := cfg.Config
	hc.Frontend = frontend.Dist()
	h, err := handler.New(hc, newClient(cfg, baseURL))
	if err != nil {
		return err
	}
	if cfg.PprofAddr != "" {
		go servePprof(cfg.PprofAddr, log)
	}
	base, cancelBase := context.WithCancelCause(context.Background())
	defer cancelBase(nil)
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: cfg.ReadHeaderTimeout,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    cfg.MaxHeaderBytes,
		BaseContext:       func(net.Listener) context.Context { return base },
		ErrorLog:          serverLog(log),
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	log.Info("listening", "url", "http://"+ln.Addr().String(), "model", cfg.Model, "demo", cfg.Demo)
	if len(cfg.Tokens) == 0 && !isLoopback(ln.Addr()) {
		log.Warn("the API is open to anyone who can reach this address: no API_TOKENS or API_TOKENS_FILE is set", "addr", ln.Addr().String())
	}

	select {
	case err := <-served:
		return err
	case <-stop:
	}
	return drain(cfg, log, srv, served, force, func() { cancelBase(handler.ErrShutdown) })
}

// drain shuts srv down: streams in flight may finish until cfg.DrainTimeout,
// or until force is closed; then cancelStreams cancels the ones left.
func drain(cfg config, log *slog.Logger, srv *http.Server, served <-chan error, force <-chan struct{}, cancelStreams func()) error {
	log.Info("shutting down: draining streams in flight", "drain_timeout", cfg.DrainTimeout)
	ctx, cancel := context.WithTimeout(context.Background(), cfg.DrainTimeout)
	defer cancel()
	forced := make(chan struct{})
	go func() {
		select {
		case <-force:
			close(forced)
			cancel()
		case <-ctx.Done():
		}
	}()
	if err := srv.Shutdown(ctx); err != nil {
		select {
		case <-forced:
			log.Warn("second signal: cutting the streams still running")
			cancelStreams()
			srv.Close()
			<-served
			return errForced
		default:
		}
		log.Warn("drain timeout passed: cancelling the streams still running")
		cancelStreams()
		grace, cancelGrace := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancelGrace()
		if srv.Shutdown(grace) != nil {
			srv.Close()
		}
	}
	if err := <-served; !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	log.Info("stopped")
	return nil
}

// serverLog bridges net/http's own error log (accept errors, bad TLS
// handshakes, panics) to log, so that everything the process prints is in
// one format.
func serverLog(log *slog.Logger) *stdlog.Logger {
	return slog.NewLogLogger(log.Handler(), slog.LevelWarn)
}

// share makes the handler share its state with the other instances on
// the Redis at cfg.RedisURL, and returns what closes the connection.
func share(cfg *config, log *slog.Logger) (func(), error) {
	conn, err := redisconn.Open(cfg.RedisURL, cfg.RedisPrefix, log)
	if err != nil {
		return nil, err
	}
	limiter := limit.NewShared(conn, cfg.Limits, cfg.RedisLease)
	cfg.Limiter = limiter
	if cfg.AuthFailuresPerMinute > 0 {
		cfg.AuthFailures = limit.NewSharedFailures(conn, cfg.AuthFailuresPerMinute)
	}
	store := redisstore.New(conn, redisstore.Options{TTL: cfg.ResumeTTL, MaxLines: resumeLines(cfg.ResumeMaxBytes)})
	cfg.Resume = store
	cfg.Dependencies = map[string]func(context.Context) error{"redis": conn.Check}
	cfg.Collectors = append(cfg.Collectors, conn.Collectors()...)
	log.Info("sharing limits and resumable streams with other instances through redis", "prefix", cfg.RedisPrefix)
	return func() {
		store.Close()
		limiter.Close()
		conn.Close()
	}, nil
}

// resumeLines turns RESUME_MAX_BYTES into the line cap of a log on Redis
// (XADD's MAXLEN counts entries, not bytes), at 16 bytes a line: a few
// tokens each. Off (-1) keeps the store's default.
func resumeLines(maxBytes int64) int64 {
	return max(0, maxBytes/16)
}

// isLoopback reports whether addr accepts only connections from this host.
func isLoopback(addr net.Addr) bool {
	tcp, ok := addr.(*net.TCPAddr)
	return ok && tcp.IP.IsLoopback()
}

// servePprof serves net/http/pprof's profiles on their own address, which
// should stay on loopback.
func servePprof(addr string, log *slog.Logger) {
	log.Info("pprof listening", "url", "http://"+addr+"/debug/pprof/")
	srv := &http.Server{Addr: addr, Handler: http.DefaultServeMux, ReadHeaderTimeout: 10 * time.Second, ErrorLog: serverLog(log)}
	log.Warn("pprof stopped", "error", srv.ListenAndServe())
}

// startDemo serves the demo upstream on a loopback port and returns its
// base URL.
func startDemo(delay time.Duration, log *slog.Logger) (string, func(), error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, err
	}
	srv := &http.Server{Handler: demo.Handler(demo.Options{Delay: delay}), ReadHeaderTimeout: 10 * time.Second, ErrorLog: serverLog(log)}
	go srv.Serve(ln)
	return "http://" + ln.Addr().String() + "/v1/", func() { srv.Close() }, nil
}

// newClient returns the upstream client. The SDK's retries run only before
// the upstream answers, and not at all for a Retry-After longer than
// maxRetryWait: such a wait is the caller's to decide.
func newClient(cfg config, baseURL string) openai.Client {
	const maxRetryWait = 5 * time.Second
	opts := []option.RequestOption{
		option.WithMaxRetries(max(0, cfg.Retries)), // handler.Off: none
		option.WithMaxRetryDelay(maxRetryWait),
		option.WithAPIKey(cfg.APIKey),
		option.WithHTTPClient(&http.Client{Transport: upstreamTransport()}),
	}
	if baseURL != "" {
		opts = append(opts, option.WithBaseURL(baseURL))
	}
	return openai.NewClient(opts...)
}

// upstreamTransport is Go's default transport with buffers sized for a
// stream of small events: each HTTP/1.1 connection keeps a read and a write
// buffer for its whole life, 4 KiB each by default, while an upstream event
// is a few hundred bytes and the SSE decoder has a buffer of its own, which
// larger reads fill directly. Over HTTPS Go speaks HTTP/2, which shares connections
// and buffers its own way; these sizes then do not apply.
func upstreamTransport() *http.Transport {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.ReadBufferSize = 1 << 10
	t.WriteBufferSize = 1 << 10
	return t
}
