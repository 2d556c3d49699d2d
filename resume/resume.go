// Package resume keeps the replay log of each stream, so that a client whose
// connection dropped can read the stream again from any line, while it is
// still generating or for a while after it ended.
//
// A Store holds the logs. The stream's producer writes one with a Log: it
// appends each delta's content, numbered 1, 2, 3, ..., and finally marks how
// the stream ended. Readers follow a log with a Cursor: first the lines
// already there, then live ones as they come, then the end.
//
// The Store is an interface so that logs can live in this process (Memory)
// or be shared between instances (for example on Redis Streams: Append
// batches XADDs, a Cursor reads with XRANGE and then XREAD BLOCK).
package resume

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"time"
)

// Store keeps the replay logs of streams.
type Store interface {
	// Create starts the log of a new, running stream. owner names who may
	// read it ("" when anyone with the id may). cancel is called at most
	// once, from any goroutine, when Cancel is asked for the stream; it must
	// not block.
	Create(ctx context.Context, id, owner string, cancel func()) (Log, error)

	// Status returns what is known of a stream, or ErrNotFound for an
	// unknown or expired id.
	Status(ctx context.Context, id string) (Status, error)

	// Follow returns a Cursor on the stream's lines after line from, or
	// ErrNotFound, ErrBeyond (from is past the lines there are) or ErrEvicted
	// (line from+1 is no longer kept). The Cursor stops when ctx is done.
	Follow(ctx context.Context, id string, from int64) (Cursor, error)

	// Cancel asks the stream's producer to stop, through the cancel function
	// given to Create. It returns ErrNotFound for an unknown id; cancelling
	// a stream that already ended does nothing.
	Cancel(ctx context.Context, id string) error
}

// Log is the write side of one stream's log, held by its producer only.
// Its methods are called from one goroutine at a time.
type Log interface {
	// Append adds the next line: one delta's content, never empty. It is on
	// the hot path of every stream and must not wait for the network; an
	// implementation that stores remotely batches and reports failures in
	// Finish. content may share memory with the upstream event it came
	// from (see stream.ParseEvent): one that keeps it past the call keeps a
	// copy.
	Append(content string)

	// Finish marks how the stream ended and starts the log's time to live.
	// end.State is Completed, Failed or Cancelled. Followers see the end
	// after the last line.
	Finish(end End) error

	// Attached reports how many Cursors follow the log now, and when the
	// last one went away (zero if none ever did). The producer uses it to
	// keep generating while somebody reads.
	Attached() (followers int, lastLeft time.Time)
}

// Cursor reads one stream's lines in order and then its end, in the style
// of bufio.Scanner: call Next until it returns false, then check Err; End
// is valid when Err is nil. Close it when done, to detach.
type Cursor interface {
	// Next waits for the next line, or the end, and reports whether there
	// is a line.
	Next() bool
	// Line returns the current line's number and content. The content is
	// valid until the next call to Next.
	Line() (n int64, content []byte)
	// End returns how the stream ended, once Next returned false.
	End() End
	// Err returns the error that stopped Next: the context's, or
	// ErrEvicted when the lines ahead were dropped while the reader was
	// slow, or a store failure.
	Err() error
	// Close detaches the cursor; it is safe to call more than once.
	Close() error
}

// State is where a stream stands.
type State string

// The states of a stream.
const (
	Running   State = "running"
	Completed State = "completed" // the upstream ended normally
	Failed    State = "failed"    // the stream was cut
	Cancelled State = "cancelled" // Cancel stopped it
)

// Usage is the token count the upstream reported.
type Usage struct {
	PromptTokens     int64 `json:"prompt_tokens"`
	CompletionTokens int64 `json:"completion_tokens"`
}

// Error says why a stream failed, as the API's JSON errors do.
type Error struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// End is how a stream ended.
type End struct {
	State        State
	FinishReason string // the upstream's, when it gave one
	Usage        *Usage // when the upstream reported it
	Error        *Error // when State is Failed or Cancelled
}

// Status is what is known of a stream.
type Status struct {
	Owner string
	// Lines is the number of lines appended so far; First is the number of
	// the first line still kept, Lines+1 when none is.
	Lines, First int64
	// End is how the stream ended; its State is Running until then.
	End
}

var (
	// ErrNotFound means the stream is unknown, or its log expired.
	ErrNotFound = errors.New("resume: no such stream")
	// ErrBeyond means a Follow asked to start past the last line.
	ErrBeyond = errors.New("resume: from is past the last line")
	// ErrEvicted means lines a reader needs were dropped to stay within the
	// memory bounds.
	ErrEvicted = errors.New("resume: lines evicted")
	// ErrUnavailable means the store can't be reached just now.
	ErrUnavailable = errors.New("resume: store unavailable")
)

// NewID returns a new stream id: 128 bits from crypto/rand, in unpadded
// base64url (22 characters).
func NewID() string {
	var b [16]byte
	rand.Read(b[:]) // never fails; crypto/rand panics if it can't read
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// ValidID reports whether s looks like an id NewID made, so that garbage is
// refused before it reaches a store.
func ValidID(s string) bool {
	if len(s) != 22 {
		return false
	}
	_, err := base64.RawURLEncoding.Strict().DecodeString(s)
	return err == nil
}
