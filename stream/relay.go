package stream

import (
	"errors"
	"io"

	"github.com/openai/openai-go/v3"
)

// Chunks is an upstream stream of chat-completion chunks, as openai-go's
// ssestream.Stream provides it: call Next until false, then check Err.
type Chunks interface {
	Next() bool
	Current() openai.ChatCompletionChunk
	Err() error
	Close() error
}

var (
	// ErrNoChunks means the upstream ended before sending a single chunk.
	ErrNoChunks = errors.New("upstream ended before its first chunk")
	// ErrTruncated means the upstream ended without a chunk carrying a
	// finish_reason. openai-go reports such a cut-off body as a normal end.
	ErrTruncated = errors.New("upstream ended before a finish_reason")
	// ErrLineTooLong means a LineReader met a line over its limit.
	ErrLineTooLong = errors.New("line too long")
)

// ReadError is a failure on the upstream side of the relay.
type ReadError struct{ Err error }

func (e *ReadError) Error() string { return "reading upstream: " + e.Err.Error() }
func (e *ReadError) Unwrap() error { return e.Err }

// WriteError is a failure on the client side of the relay: the client left.
type WriteError struct{ Err error }

func (e *WriteError) Error() string { return "writing client: " + e.Err.Error() }
func (e *WriteError) Unwrap() error { return e.Err }

// Usage is the token count an upstream reports in its usage chunk.
type Usage struct {
	PromptTokens, CompletionTokens int64
}

// Relay moves the content deltas of one upstream stream to a client.
// Start waits for the upstream's first chunk, so that the caller can still
// answer with an HTTP error; Copy then relays everything.
type Relay struct {
	src      Chunks
	pending  bool // src.Current holds a chunk not yet relayed
	finished bool // some chunk carried a finish_reason

	// Lines and Bytes count what was written to the client.
	Lines, Bytes int64
	// Usage is filled from the upstream's usage chunk, if it sent one.
	Usage Usage
}

// NewRelay returns a Relay reading from src. The caller closes src.
func NewRelay(src Chunks) *Relay {
	return &Relay{src: src}
}

// Start reads the upstream's first chunk. It returns a *ReadError when the
// upstream failed or ended first (wrapping ErrNoChunks for an empty stream).
func (r *Relay) Start() error {
	if !r.src.Next() {
		return r.readErr(ErrNoChunks)
	}
	r.pending = true
	return nil
}

// Copy writes one line per content delta to w, each followed by flush, so a
// line reaches the client before the next chunk is read. It returns nil only
// when the upstream ended cleanly after a finish_reason.
func (r *Relay) Copy(w io.Writer, flush func() error) error {
	lw := lineWriter{w: w, flush: flush}
	for r.pending || r.src.Next() {
		r.pending = false
		content := r.current()
		if content == "" {
			continue
		}
		n, err := lw.WriteLine(content)
		r.Bytes += int64(n)
		if err != nil {
			return &WriteError{Err: err}
		}
		r.Lines++
	}
	if !r.finished {
		return r.readErr(ErrTruncated)
	}
	return r.readErr(nil)
}

// current notes what the current chunk says about the stream and returns
// its content. It stays out of line so that the chunk, 1.4 KiB by value,
// takes room in its frame only while it is read, and not in Copy's frame all
// the while Copy waits for the upstream: a relay parked between deltas then
// uses little enough stack for the GC to shrink it.
//
//go:noinline
func (r *Relay) current() string {
	chunk := r.src.Current()
	return r.take(&chunk)
}

// take notes what a chunk says about the stream and returns its content.
func (r *Relay) take(chunk *openai.ChatCompletionChunk) string {
	if u := chunk.Usage; u.PromptTokens != 0 || u.CompletionTokens != 0 {
		r.Usage = Usage{PromptTokens: u.PromptTokens, CompletionTokens: u.CompletionTokens}
	}
	if len(chunk.Choices) == 0 {
		return ""
	}
	choice := &chunk.Choices[0]
	if choice.FinishReason != "" {
		r.finished = true
	}
	return choice.Delta.Content
}

// readErr returns the upstream's own error if it has one, else ifNone,
// wrapped as a *ReadError; nil when both are nil.
func (r *Relay) readErr(ifNone error) error {
	err := r.src.Err()
	if err == nil {
		err = ifNone
	}
	if err == nil {
		return nil
	}
	return &ReadError{Err: err}
}

// lineWriter writes encoded lines and flushes after each: the whole flush
// policy of the relay, since every line must reach the client at once.
type lineWriter struct {
	w     io.Writer
	flush func() error
	buf   []byte
}

// WriteLine encodes content as one line, writes it and flushes.
// It returns the number of bytes written.
func (lw *lineWriter) WriteLine(content string) (int, error) {
	lw.buf = AppendLine(lw.buf[:0], content)
	n, err := lw.w.Write(lw.buf)
	if err != nil {
		return n, err
	}
	return n, lw.flush()
}
