package handler

import (
	"cmp"
	"context"
	"io/fs"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"streamrelay/internal/limit"
	"streamrelay/resume"
)

// Config is what the handler needs to know. A zero field takes its
// default, set in one place, WithDefaults. Off turns off MaxMessages,
// MaxInputChars, WriteTimeout, BodyReadTimeout and the Limits.
type Config struct {
	APIKey        string   // the upstream's key, only to keep it out of answers
	Model         string   // the default model
	Models        []string // the models a request may ask for (default: Model)
	SystemPrompt  string   // prepended to every conversation if set
	MaxBodyBytes  int64    // the request body limit (default: DefaultBodyBytes)
	MaxTokens     int64    // the cap on a request's max_tokens, sent when it gives none; 0: no cap
	TokensParam   string   // the upstream parameter it goes in: TokensParamCompletion or TokensParamLegacy
	MaxMessages   int      // messages in one request
	MaxInputChars int      // characters of prompt and messages together
	OmitUsage     bool     // don't ask the upstream for a usage chunk

	FirstEventTimeout time.Duration // until the upstream's first event
	IdleTimeout       time.Duration // between upstream chunks
	StreamDeadline    time.Duration // for a whole stream
	WriteTimeout      time.Duration // for each write to the client
	BodyReadTimeout   time.Duration // for reading the request body
	MaxEventBytes     int           // one upstream event
	KeepAliveInterval time.Duration // a keep-alive after this long without a byte

	ResumeTTL      time.Duration // a stream's replay is kept this long after its end
	ResumeMaxBytes int64         // replay kept per stream
	ResumeMemory   int64         // replay kept in all
	ResumeGrace    time.Duration // a resumable stream outlives its client by this
	Resume         resume.Store  // where replays live; nil: in this process

	Tokens      []string     // callers' API tokens; none: the API is open
	CORSOrigins []string     // web origins allowed to call the API
	Limits      limit.Config // per-caller and global admission limits
	// Limiter admits streams; nil: one of this process's own, for Limits.
	Limiter limit.Admitter
	// Dependencies are what /readyz reports on, by name (redis): each
	// answers nil while up.
	Dependencies map[string]func(context.Context) error
	// Collectors are more metrics to serve beside the handler's own.
	Collectors     []prometheus.Collector
	Demo           bool         // the upstream is the built-in demo
	Frontend       fs.FS        // the built page, served at /; nil: none
	FrontendDir    string       // a built page on disk, served instead of Frontend
	TrustedProxies []string     // whose X-Forwarded-For to believe; none: nobody's
	Logger         *slog.Logger // default: slog.Default()

	AllowedHosts          []string             // Host names served while the API is open (default: loopback's names; "*": any)
	AuthFailuresPerMinute int                  // failed authentications per client address per minute (default 10)
	AuthFailures          limit.FailureLimiter // counts them; default: limit.NewFailures(AuthFailuresPerMinute)
}

// The upstream parameters a token limit can go in.
const (
	TokensParamCompletion = "max_completion_tokens" // what OpenAI's current models take
	TokensParamLegacy     = "max_tokens"            // what OpenAI's reasoning models reject, and some older servers need
)

// Off turns a limit or a client timeout off.
const Off = limit.Off

// WithDefaults returns c with each zero field set to its default. New
// applies it; the configuration loader shows what it returns for a zero
// Config as the defaults.
func (c Config) WithDefaults() Config {
	c.Model = cmp.Or(c.Model, "gpt-4o-mini")
	c.MaxMessages = cmp.Or(c.MaxMessages, defaultMaxMessages)
	c.MaxInputChars = cmp.Or(c.MaxInputChars, defaultMaxInputChars)
	if len(c.Models) == 0 {
		c.Models = []string{c.Model}
	}
	c.MaxBodyBytes = cmp.Or(c.MaxBodyBytes, DefaultBodyBytes(c.MaxInputChars, c.MaxMessages))
	c.TokensParam = cmp.Or(c.TokensParam, TokensParamCompletion)
	c.FirstEventTimeout = cmp.Or(c.FirstEventTimeout, 10*time.Minute)
	c.IdleTimeout = cmp.Or(c.IdleTimeout, 60*time.Second)
	c.StreamDeadline = cmp.Or(c.StreamDeadline, 10*time.Minute)
	c.WriteTimeout = cmp.Or(c.WriteTimeout, 30*time.Second)
	c.BodyReadTimeout = cmp.Or(c.BodyReadTimeout, 10*time.Second)
	c.MaxEventBytes = cmp.Or(c.MaxEventBytes, 2<<20)
	c.KeepAliveInterval = cmp.Or(c.KeepAliveInterval, 15*time.Second)
	c.ResumeTTL = cmp.Or(c.ResumeTTL, 2*time.Minute)
	c.ResumeMaxBytes = cmp.Or(c.ResumeMaxBytes, 1<<20)
	c.ResumeMemory = cmp.Or(c.ResumeMemory, 256<<20)
	c.ResumeGrace = cmp.Or(c.ResumeGrace, 15*time.Second)
	c.Limits = c.Limits.WithDefaults()
	c.AuthFailuresPerMinute = cmp.Or(c.AuthFailuresPerMinute, 10)
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return c
}

const (
	defaultMaxMessages   = 100
	defaultMaxInputChars = 32000
)

// The most a request's JSON can take beside its text, and the most one
// character of text can take: one outside the Basic Multilingual Plane,
// counted as one character, escaped as a UTF-16 surrogate pair, \uXXXX\uXXXX.
const (
	requestJSONBytes = 1024 // braces, keys, model, max_tokens, temperature
	messageJSONBytes = 64   // {"role": "assistant", "content": ""}, with spaces
	escapedCharBytes = 12
)

// BodyBytesNeeded is the smallest body limit that admits every request
// within the input limits, however the client escapes its text: chars
// characters in messages messages, each character escaped at worst. A
// limit that is off counts as its default.
func BodyBytesNeeded(chars, messages int) int64 {
	if chars <= 0 {
		chars = defaultMaxInputChars
	}
	if messages <= 0 {
		messages = defaultMaxMessages
	}
	return requestJSONBytes + int64(messages)*messageJSONBytes + int64(chars)*escapedCharBytes
}

// DefaultBodyBytes is the body limit when none is set: BodyBytesNeeded
// rounded up to 64 KiB, 384 KiB for the default input limits.
func DefaultBodyBytes(chars, messages int) int64 {
	const round = 64 << 10
	return (BodyBytesNeeded(chars, messages) + round - 1) / round * round
}
