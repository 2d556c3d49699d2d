package handler

import (
	"cmp"
	"log/slog"
	"time"

	"streamrelay/limit"
)

// Config is what the handler needs to know. A zero field takes its
// default, set in one place, WithDefaults; a negative limit or timeout
// (Off) turns it off.
type Config struct {
	APIKey        string   // the upstream's key, only to keep it out of answers
	Model         string   // the default model
	Models        []string // the models a request may ask for (default: Model)
	SystemPrompt  string   // prepended to every conversation if set
	MaxBodyBytes  int64    // the request body limit
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

	Tokens         []string     // callers' API tokens; none: the API is open
	CORSOrigins    []string     // web origins allowed to call the API
	Limits         limit.Config // per-caller and global admission limits
	Demo           bool         // the upstream is the built-in demo
	FrontendDir    string       // the built frontend, served at /
	TrustedProxies []string     // whose X-Forwarded-For to believe
	Logger         *slog.Logger // default: slog.Default()
}

// The upstream parameters a token limit can go in.
const (
	TokensParamCompletion = "max_completion_tokens" // what OpenAI's current models take
	TokensParamLegacy     = "max_tokens"            // what OpenAI's reasoning models reject, and some older servers need
)

// Off, as a limit or a timeout, turns it off.
const Off = limit.Off

// WithDefaults returns c with each zero field set to its default. New
// applies it; the configuration loader shows what it returns for a zero
// Config as the defaults.
func (c Config) WithDefaults() Config {
	c.Model = cmp.Or(c.Model, "gpt-4o-mini")
	if len(c.Models) == 0 {
		c.Models = []string{c.Model}
	}
	c.MaxBodyBytes = cmp.Or(c.MaxBodyBytes, 64<<10)
	c.TokensParam = cmp.Or(c.TokensParam, TokensParamCompletion)
	c.MaxMessages = cmp.Or(c.MaxMessages, 100)
	c.MaxInputChars = cmp.Or(c.MaxInputChars, 32000)
	c.FirstEventTimeout = cmp.Or(c.FirstEventTimeout, 30*time.Second)
	c.IdleTimeout = cmp.Or(c.IdleTimeout, 60*time.Second)
	c.StreamDeadline = cmp.Or(c.StreamDeadline, 10*time.Minute)
	c.WriteTimeout = cmp.Or(c.WriteTimeout, 30*time.Second)
	c.BodyReadTimeout = cmp.Or(c.BodyReadTimeout, 10*time.Second)
	c.Limits = c.Limits.WithDefaults()
	c.FrontendDir = cmp.Or(c.FrontendDir, "frontend/dist")
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return c
}
