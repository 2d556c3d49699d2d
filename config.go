package main

import (
	"cmp"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"streamrelay/handler"
	"streamrelay/internal/limit"
)

// config is the whole configuration: the handler's, which holds the
// limiter's, and what only main uses. loadConfig fills it once; the
// handler gets the embedded handler.Config as it is.
type config struct {
	handler.Config

	BaseURL           string
	Addr              string
	Retries           int
	DrainTimeout      time.Duration
	ReadHeaderTimeout time.Duration
	DemoDelay         time.Duration
	TokensFile        string
	LogFormat         string
	LogLevel          string
	PprofAddr         string
	MaxHeaderBytes    int
	RedisURL          string        // shared state across instances; empty: none
	RedisPrefix       string        // every Redis key starts with it
	RedisLease        time.Duration // a stream slot's lease; not a setting
}

// withDefaults returns c with each zero field set to its default; the
// handler's and the limiter's defaults are their own packages'.
func (c config) withDefaults() config {
	c.Config = c.Config.WithDefaults()
	c.Addr = cmp.Or(c.Addr, "127.0.0.1:8080")
	c.Retries = cmp.Or(c.Retries, 2)
	c.DrainTimeout = cmp.Or(c.DrainTimeout, 30*time.Second)
	c.ReadHeaderTimeout = cmp.Or(c.ReadHeaderTimeout, 10*time.Second)
	c.DemoDelay = cmp.Or(c.DemoDelay, 30*time.Millisecond)
	c.LogFormat = cmp.Or(c.LogFormat, "text")
	c.LogLevel = cmp.Or(c.LogLevel, "info")
	c.MaxHeaderBytes = cmp.Or(c.MaxHeaderBytes, 64<<10)
	if c.TrustedProxies == nil {
		c.TrustedProxies = []string{"127.0.0.1/8", "::1"} // a local nginx
	}
	c.RedisPrefix = cmp.Or(c.RedisPrefix, "streamrelay:")
	c.RedisLease = cmp.Or(c.RedisLease, limit.DefaultLease)
	return c
}

// setting is one row of the configuration table: an environment variable,
// the flag named after it, what it means, and the value that parses it into
// a config field.
type setting struct {
	env   string
	usage string
	value flag.Value
	def   string // the default as shown, where the value's own would mislead
}

// flagName is the setting's flag: MAX_BODY_BYTES is -max-body-bytes.
func (s setting) flagName() string {
	return strings.ReplaceAll(strings.ToLower(s.env), "_", "-")
}

// settings is the table of every setting, bound to c's fields. Loading,
// -h and the README's configuration table are all made from it. Where a
// setting may be off, 0 turns it off (handler.Off in the config).
func settings(c *config) []setting {
	return []setting{
		{"OPENAI_API_KEY", "the upstream key; with neither this nor `OPENAI_BASE_URL` set, the built-in demo model answers", text(&c.APIKey), ""},
		{"OPENAI_BASE_URL", "any OpenAI-compatible server: Ollama, vLLM, llama.cpp's server, ...", text(&c.BaseURL), "the SDK's (OpenAI)"},
		{"OPENAI_MODEL", "the default model", text(&c.Model), ""},
		{"OPENAI_MODELS", "comma-separated allowlist for the request's `model`; must include `OPENAI_MODEL`", list(&c.Models, nil), "`OPENAI_MODEL`"},
		{"SYSTEM_PROMPT", "prepended to every conversation", text(&c.SystemPrompt), ""},
		{"ADDR", "listen address, host:port", hostPort(&c.Addr), ""},
		{"MAX_BODY_BYTES", "request body limit; the default fits `MAX_INPUT_CHARS` characters in `MAX_MESSAGES` messages however escaped (`\\uXXXX`, 12 bytes beyond the BMP); a smaller limit is refused", count(&c.MaxBodyBytes, false), ""},
		{"MAX_EVENT_BYTES", "one upstream event; a bigger one cuts the stream (502 before the first line)", count(&c.MaxEventBytes, false), ""},
		{"MAX_TOKENS", "cap on a request's `max_tokens`, also sent when a request gives none; unset: no cap, and no limit is sent unless the request asks", count(&c.MaxTokens, false), "(none)"},
		{"TOKENS_PARAM", "the upstream parameter the token limit goes in: `max_completion_tokens`, or `max_tokens` for servers that don't know the newer name", oneOf(&c.TokensParam, handler.TokensParamCompletion, handler.TokensParamLegacy), ""},
		{"MAX_MESSAGES", "messages per request (0: no limit)", count(&c.MaxMessages, true), ""},
		{"MAX_INPUT_CHARS", "characters of prompt and messages together (0: no limit)", count(&c.MaxInputChars, true), ""},
		{"INCLUDE_USAGE", "ask the upstream for a usage chunk (`stream_options.include_usage`); turn off for servers that reject it", inverted(&c.OmitUsage), ""},
		{"FIRST_EVENT_TIMEOUT", "until the upstream's first event, retries included (then 504)", duration(&c.FirstEventTimeout, false), ""},
		{"KEEPALIVE_INTERVAL", "after this long without a byte to the client, an empty line (or an SSE comment); also commits 200 while the first event is awaited (0: off)", duration(&c.KeepAliveInterval, true), ""},
		{"RESUME_TTL", "how long a stream can be resumed after it ended", duration(&c.ResumeTTL, false), ""},
		{"RESUME_MAX_BYTES", "replay kept per stream; older lines are dropped", count(&c.ResumeMaxBytes, false), ""},
		{"RESUME_MEMORY", "replay kept in all; the oldest finished streams are dropped first", count(&c.ResumeMemory, false), ""},
		{"RESUME_GRACE", "a `\"resumable\": true` stream keeps generating this long after its client left, or until a respond-async stream is attached", duration(&c.ResumeGrace, false), ""},
		{"IDLE_TIMEOUT", "between upstream chunks (then the stream is cut)", duration(&c.IdleTimeout, false), ""},
		{"STREAM_DEADLINE", "for a whole stream", duration(&c.StreamDeadline, false), ""},
		{"UPSTREAM_RETRIES", "the SDK's retries, before the first event only", count(&c.Retries, true), ""},
		{"DRAIN_TIMEOUT", "on SIGINT/SIGTERM, new connections are refused and streams in flight may finish for this long, then are cut; the exit code is 0. A second signal cuts them at once (exit code 1)", duration(&c.DrainTimeout, false), ""},
		{"READ_HEADER_TIMEOUT", "a client must send its headers within this (slowloris)", duration(&c.ReadHeaderTimeout, false), ""},
		{"BODY_READ_TIMEOUT", "a client must send its body within this, on every route; then it is answered and its connection closed", duration(&c.BodyReadTimeout, false), ""},
		{"WRITE_TIMEOUT", "a client that reads nothing for this long is cut: a whole response off the stream, each write on it (long streams are not cut)", duration(&c.WriteTimeout, false), ""},
		{"MAX_HEADER_BYTES", "request headers limit (then 431)", count(&c.MaxHeaderBytes, false), ""},
		{"API_TOKENS", "comma-separated bearer tokens callers must send; none: the API is open", list(&c.Tokens, nil), ""},
		{"API_TOKENS_FILE", "a file of tokens, one a line (`#` comments), added to `API_TOKENS`", text(&c.TokensFile), ""},
		{"CORS_ORIGINS", "comma-separated origins allowed to call the API from a browser (`*` for any, never with credentials); the same origin always can", list(&c.CORSOrigins, nil), ""},
		{"RATE_LIMIT_PER_MINUTE", "requests per caller per minute (0: off); a caller is its token, else its client address", count(&c.Limits.PerMinute, true), ""},
		{"RATE_LIMIT_BURST", "requests a caller may make at once", count(&c.Limits.Burst, false), ""},
		{"STREAMS_PER_CALLER", "concurrent streams per caller (0: off)", count(&c.Limits.PerCaller, true), ""},
		{"MAX_STREAMS", "concurrent streams on the server (0: off)", count(&c.Limits.Global, true), ""},
		{"AUTH_FAILURES_PER_MINUTE", "missing or wrong tokens per client address per minute, then 429 until one is back (0: off)", count(&c.AuthFailuresPerMinute, true), ""},
		{"ALLOWED_HOSTS", "comma-separated `Host` names served while the API is open (no tokens; `*` for any); stops DNS rebinding. With tokens, any `Host` is served", list(&c.AllowedHosts, nil),
			"the `ADDR` host, `localhost`, `127.0.0.1`, `[::1]`"},
		{"TRUSTED_PROXIES", "IPs or CIDRs whose `X-Forwarded-For` is believed (loopback: a local nginx); `none` believes nobody. Any process on a trusted address can claim any client address",
			list(&c.TrustedProxies, proxyOrNone), ""},
		{"FRONTEND_DIR", "a built page on disk to serve at `/` instead of the one in the binary, for development", text(&c.FrontendDir), ""},
		{"DEMO_DELAY", "the demo model's pause before each token (0: none)", duration(&c.DemoDelay, true), ""},
		{"LOG_FORMAT", "`text` or `json`", oneOf(&c.LogFormat, "text", "json"), ""},
		{"LOG_LEVEL", "`debug`, `info`, `warn` or `error`", oneOf(&c.LogLevel, "debug", "info", "warn", "error"), ""},
		{"PPROF_ADDR", "serve Go's pprof profiles on this address; keep it on loopback", text(&c.PprofAddr), ""},
		{"REDIS_URL", "share limits and resumable streams with other instances through this Redis (`redis://host:6379/0`, `rediss://` for TLS); none: all state stays in the process", text(&c.RedisURL), ""},
		{"REDIS_PREFIX", "every Redis key starts with this", text(&c.RedisPrefix), ""},
	}
}

// command is what the command line asks for besides settings.
type command struct {
	version    bool // print the version and exit
	printTable bool // print the configuration table and exit
}

// loadConfig reads the configuration from the environment through getenv,
// then from the flags in args, which override it, and applies the defaults.
// An error names the variable or the flag at fault; -h gives flag.ErrHelp.
func loadConfig(args []string, getenv func(string) string) (config, command, error) {
	var c config
	var cmd command
	table := settings(&c)
	envErrs := readEnv(table, getenv)
	fs := flag.NewFlagSet("streamrelay", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	for _, s := range table {
		fs.Var(s.value, s.flagName(), s.usage)
	}
	fs.BoolVar(&cmd.version, "version", false, "print the version and exit")
	fs.BoolVar(&cmd.printTable, "print-config-table", false, "print the configuration table, in Markdown, and exit")
	if err := fs.Parse(args); err != nil {
		return c, cmd, err
	}
	if fs.NArg() > 0 {
		return c, cmd, fmt.Errorf("unexpected argument %q: settings are flags, like -addr 127.0.0.1:9090", fs.Arg(0))
	}
	if cmd.version || cmd.printTable {
		return c, cmd, nil
	}
	// A variable a flag overrides may be wrong: only the flag counts.
	fs.Visit(func(f *flag.Flag) { delete(envErrs, f.Name) })
	for _, s := range table {
		if err := envErrs[s.flagName()]; err != nil {
			return c, cmd, err
		}
	}
	c = c.withDefaults()
	return c, cmd, c.finish()
}

// readEnv sets every setting whose variable is set, and returns the
// errors by flag name.
func readEnv(table []setting, getenv func(string) string) map[string]error {
	errs := map[string]error{}
	for _, s := range table {
		v := strings.TrimSpace(getenv(s.env))
		if v == "" {
			continue
		}
		if err := s.value.Set(v); err != nil {
			errs[s.flagName()] = fmt.Errorf("%s %v (got %q)", s.env, err, v)
		}
	}
	return errs
}

// finish reads the tokens file, derives what follows from the settings,
// and checks the settings against each other.
func (c *config) finish() error {
	if c.TokensFile != "" {
		tokens, err := readTokens(c.TokensFile)
		if err != nil {
			return fmt.Errorf("API_TOKENS_FILE %v (got %q)", err, c.TokensFile)
		}
		c.Tokens = append(c.Tokens, tokens...)
	}
	if need := handler.BodyBytesNeeded(c.MaxInputChars, c.MaxMessages); c.MaxInputChars > 0 && c.MaxBodyBytes < need {
		return fmt.Errorf("MAX_BODY_BYTES must be at least %d, or unset, to hold MAX_INPUT_CHARS characters escaped as \\uXXXX (got %q)",
			need, strconv.FormatInt(c.MaxBodyBytes, 10))
	}
	if !slices.Contains(c.Models, c.Model) {
		return fmt.Errorf("OPENAI_MODELS must include OPENAI_MODEL (%s) (got %q)", c.Model, strings.Join(c.Models, ","))
	}
	c.Demo = c.APIKey == "" && c.BaseURL == ""
	if slices.ContainsFunc(c.TrustedProxies, func(p string) bool { return strings.EqualFold(p, "none") }) {
		if len(c.TrustedProxies) > 1 {
			return fmt.Errorf("TRUSTED_PROXIES must be none alone, or IP addresses and CIDR ranges (got %q)", strings.Join(c.TrustedProxies, ","))
		}
		c.TrustedProxies = []string{}
	}
	if len(c.AllowedHosts) == 0 {
		c.AllowedHosts = listenHosts(c.Addr)
	}
	if c.RedisURL != "" {
		if _, err := redis.ParseURL(c.RedisURL); err != nil {
			// Without the value: it may hold a password.
			return errors.New("REDIS_URL must be a URL like redis://127.0.0.1:6379/0 or rediss://user:password@host:6380/0")
		}
	}
	return nil
}

// listenHosts is the default of ALLOWED_HOSTS: loopback's names and the
// listen address's host.
func listenHosts(addr string) []string {
	hosts := []string{"localhost", "127.0.0.1", "[::1]"}
	if host, _, err := net.SplitHostPort(addr); err == nil && host != "" && !slices.Contains(hosts, host) {
		hosts = append(hosts, host)
	}
	return hosts
}

// readTokens reads tokens from a file: one a line, blank lines and lines
// starting with # skipped.
func readTokens(path string) ([]string, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, errors.New("must name a readable file of tokens, one a line")
	}
	var tokens []string
	for _, line := range strings.Split(string(data), "\n") {
		if line = strings.TrimSpace(line); line != "" && !strings.HasPrefix(line, "#") {
			tokens = append(tokens, line)
		}
	}
	if len(tokens) == 0 {
		return nil, errors.New("must name a file with at least one token")
	}
	return tokens, nil
}
