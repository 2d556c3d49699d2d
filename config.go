package main

import (
	"fmt"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"
)

// config is the whole configuration, read from the environment.
type config struct {
	APIKey       string
	BaseURL      string
	Model        string
	Models       []string
	SystemPrompt string
	Addr         string
	MaxBodyBytes int64
	MaxTokens    int64
	IncludeUsage bool
	Retries      int

	FirstEventTimeout time.Duration
	IdleTimeout       time.Duration
	StreamDeadline    time.Duration
	DrainTimeout      time.Duration
	ReadHeaderTimeout time.Duration

	DemoDelay      time.Duration
	FrontendDir    string
	TrustedProxies []string
	LogFormat      string
	LogLevel       string
	PprofAddr      string

	Tokens          []string
	CORSOrigins     []string
	MaxMessages     int
	MaxInputChars   int
	RatePerMinute   int
	RateBurst       int
	StreamsPerCall  int
	MaxStreams      int
	WriteTimeout    time.Duration
	BodyReadTimeout time.Duration
}

// demo reports whether the built-in demo upstream stands in for a real one:
// when neither a key nor a base URL is configured.
func (c config) demo() bool { return c.APIKey == "" && c.BaseURL == "" }

// loadConfig reads the configuration through getenv. An error names the
// variable at fault.
func loadConfig(getenv func(string) string) (config, error) {
	e := envReader{getenv: getenv}
	c := config{
		APIKey:       getenv("OPENAI_API_KEY"),
		BaseURL:      getenv("OPENAI_BASE_URL"),
		Model:        e.str("OPENAI_MODEL", "gpt-4o-mini"),
		SystemPrompt: getenv("SYSTEM_PROMPT"),
		Addr:         e.str("ADDR", "127.0.0.1:8080"),
		MaxBodyBytes: e.positive("MAX_BODY_BYTES", 64<<10),
		MaxTokens:    e.positive("MAX_TOKENS", 4096),
		IncludeUsage: e.boolean("INCLUDE_USAGE", true),
		Retries:      int(e.count("UPSTREAM_RETRIES", 2)),

		FirstEventTimeout: e.duration("FIRST_EVENT_TIMEOUT", 30*time.Second, time.Millisecond),
		IdleTimeout:       e.duration("IDLE_TIMEOUT", 60*time.Second, time.Millisecond),
		StreamDeadline:    e.duration("STREAM_DEADLINE", 10*time.Minute, time.Millisecond),
		DrainTimeout:      e.duration("DRAIN_TIMEOUT", 30*time.Second, time.Millisecond),
		ReadHeaderTimeout: e.duration("READ_HEADER_TIMEOUT", 10*time.Second, time.Millisecond),

		DemoDelay:      e.duration("DEMO_DELAY", 30*time.Millisecond, 0),
		FrontendDir:    e.str("FRONTEND_DIR", "frontend/dist"),
		TrustedProxies: e.list("TRUSTED_PROXIES", nil),
		LogFormat:      e.oneOf("LOG_FORMAT", "text", "text", "json"),
		LogLevel:       e.oneOf("LOG_LEVEL", "info", "debug", "info", "warn", "error"),
		PprofAddr:      getenv("PPROF_ADDR"),

		Tokens:          e.list("API_TOKENS", nil),
		CORSOrigins:     e.list("CORS_ORIGINS", nil),
		MaxMessages:     int(e.count("MAX_MESSAGES", 100)),
		MaxInputChars:   int(e.count("MAX_INPUT_CHARS", 32000)),
		RatePerMinute:   int(e.count("RATE_LIMIT_PER_MINUTE", 60)),
		RateBurst:       int(e.count("RATE_LIMIT_BURST", 20)),
		StreamsPerCall:  int(e.count("STREAMS_PER_CALLER", 5)),
		MaxStreams:      int(e.count("MAX_STREAMS", 5000)),
		WriteTimeout:    e.duration("WRITE_TIMEOUT", 30*time.Second, time.Millisecond),
		BodyReadTimeout: e.duration("BODY_READ_TIMEOUT", 10*time.Second, time.Millisecond),
	}
	c.Tokens = append(c.Tokens, e.tokenFile("API_TOKENS_FILE")...)
	c.Models = e.list("OPENAI_MODELS", []string{c.Model})
	if e.err == nil && !slices.Contains(c.Models, c.Model) {
		e.fail("OPENAI_MODELS", "must include OPENAI_MODEL ("+c.Model+")")
	}
	if e.err == nil {
		if _, _, err := net.SplitHostPort(c.Addr); err != nil {
			e.fail("ADDR", "must be host:port, like 127.0.0.1:8080")
		}
		for _, p := range c.TrustedProxies {
			if net.ParseIP(p) == nil {
				if _, _, err := net.ParseCIDR(p); err != nil {
					e.fail("TRUSTED_PROXIES", "must be IP addresses or CIDR ranges, separated by commas")
				}
			}
		}
	}
	return c, e.err
}

// envReader parses variables and keeps the first error.
type envReader struct {
	getenv func(string) string
	err    error
}

func (e *envReader) fail(name, want string) {
	if e.err == nil {
		e.err = fmt.Errorf("%s %s (got %q)", name, want, e.getenv(name))
	}
}

func (e *envReader) str(name, def string) string {
	if v := strings.TrimSpace(e.getenv(name)); v != "" {
		return v
	}
	return def
}

func (e *envReader) oneOf(name, def string, allowed ...string) string {
	v := strings.ToLower(e.str(name, def))
	for _, a := range allowed {
		if v == a {
			return v
		}
	}
	e.fail(name, "must be one of "+strings.Join(allowed, ", "))
	return def
}

func (e *envReader) count(name string, def int64) int64 {
	v := e.str(name, "")
	if v == "" {
		return def
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n < 0 {
		e.fail(name, "must be a whole number, 0 or more")
		return def
	}
	return n
}

func (e *envReader) positive(name string, def int64) int64 {
	n := e.count(name, def)
	if n == 0 {
		e.fail(name, "must be a whole number above 0")
		return def
	}
	return n
}

// duration reads a duration above min, or at least 0 when min is 0.
func (e *envReader) duration(name string, def, min time.Duration) time.Duration {
	v := e.str(name, "")
	if v == "" {
		return def
	}
	d, err := time.ParseDuration(v)
	if err != nil || d < 0 || (min > 0 && d < min) {
		e.fail(name, "must be a duration like 30s, 500ms or 10m, at least "+min.String())
		return def
	}
	return d
}

func (e *envReader) boolean(name string, def bool) bool {
	v := e.str(name, "")
	if v == "" {
		return def
	}
	b, err := strconv.ParseBool(v)
	if err != nil {
		e.fail(name, "must be true or false")
		return def
	}
	return b
}

func (e *envReader) list(name string, def []string) []string {
	v := e.str(name, "")
	if v == "" {
		return def
	}
	var out []string
	for _, s := range strings.Split(v, ",") {
		if s = strings.TrimSpace(s); s != "" {
			out = append(out, s)
		}
	}
	return out
}

// tokenFile reads tokens from the file the variable names: one a line,
// blank lines and lines starting with # skipped.
func (e *envReader) tokenFile(name string) []string {
	path := e.str(name, "")
	if path == "" {
		return nil
	}
	data, err := os.ReadFile(path)
	if err != nil {
		e.fail(name, "must name a readable file of tokens, one a line")
		return nil
	}
	var tokens []string
	for _, line := range strings.Split(string(data), "\n") {
		if line = strings.TrimSpace(line); line != "" && !strings.HasPrefix(line, "#") {
			tokens = append(tokens, line)
		}
	}
	if len(tokens) == 0 {
		e.fail(name, "must name a file with at least one token")
	}
	return tokens
}
