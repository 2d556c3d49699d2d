package stream

import (
	"context"
	"errors"
	"net/http"
	"time"
)

var (
	// ErrNoChunks means the upstream ended before sending a single chunk.
	ErrNoChunks = errors.New("upstream ended before its first chunk")
	// ErrTruncated means the upstream's body ended with neither a
	// finish_reason nor the [DONE] sentinel: the answer was cut off.
	ErrTruncated = errors.New("upstream ended before a finish_reason or [DONE]")
	// ErrLineTooLong means a LineReader met a line over its limit.
	ErrLineTooLong = errors.New("line too long")
	// ErrClientGone means the client went away.
	ErrClientGone = errors.New("the client went away")
	// ErrShutdown is the cause the server cancels streams with when it
	// stops.
	ErrShutdown = errors.New("the server is shutting down")
)

// ReadError is a failure on the upstream side of the relay.
type ReadError struct{ Err error }

func (e *ReadError) Error() string { return "reading upstream: " + e.Err.Error() }
func (e *ReadError) Unwrap() error { return e.Err }

// WriteError is a failure on the client side of the relay: the client left
// or stopped reading.
type WriteError struct{ Err error }

func (e *WriteError) Error() string { return "writing client: " + e.Err.Error() }
func (e *WriteError) Unwrap() error { return e.Err }

// Open sends the upstream request under ctx and returns its streaming
// response. The relay cancels ctx to stop the request: on its timeouts,
// and when it is done.
type Open func(ctx context.Context) (*http.Response, error)

// Relay is the policy of every stream: its timeouts, the cap on one
// upstream event, the wire encoding and the grace before a cut. One Relay
// serves any number of streams at once; Run relays one.
type Relay struct {
	FirstEventTimeout time.Duration // from the request until the first event
	IdleTimeout       time.Duration // between events
	Deadline          time.Duration // for the whole stream; 0: none
	WriteTimeout      time.Duration // for each write to the client; 0: none
	MaxEventBytes     int           // one upstream event; 0: DefaultMaxEventBytes
	// AbortGrace is how long a failed stream's last lines get to reach the
	// client before Run returns and the caller cuts the connection:
	// Chromium drops the bytes that arrive together with the connection's
	// end instead of handing them to the page's reader.
	AbortGrace time.Duration
	Encoder    Encoder // nil: Plain
}

// Result is how one stream went.
type Result struct {
	Outcome Outcome
	Err     error // why it failed: a *ReadError, a *WriteError or ErrShutdown
	// Committed is true once the status line went out: from then on a
	// failure can only cut the body, which the caller must do by aborting
	// the response (panic(http.ErrAbortHandler)).
	Committed    bool
	Lines, Bytes int64 // written to the client
	Usage        Usage // as the upstream reported it
	// FirstEvent and FirstLine are the times from the start of Run to the
	// upstream's first event and to the first line written; 0 for none.
	FirstEvent, FirstLine time.Duration
}

// Cut reports whether the answer started and then failed: the caller must
// end the body without its terminating chunk, so the client sees it is
// incomplete.
func (r *Result) Cut() bool { return r.Committed && r.Outcome != Completed }

// Run relays one stream to w. It opens the upstream and waits for its
// first event before it writes anything, so that a failure until then
// leaves w untouched for an HTTP error; then it writes the headers and one
// flushed line per content delta. ctx is the client's request context.
func (r *Relay) Run(ctx context.Context, w http.ResponseWriter, open Open) Result {
	s := r.newRun(ctx)
	defer s.stop()
	events, err := s.start(open)
	if err != nil {
		return s.end(err)
	}
	defer events.Close()
	out := newClient(w, r.WriteTimeout)
	defer out.close()
	err = out.commit(s.encoder.ContentType())
	s.res.Committed = true
	if err == nil {
		err = s.copy(events, out)
	}
	if !out.first.IsZero() {
		s.res.FirstLine = out.first.Sub(s.begin)
	}
	return s.end(err)
}

// run is the state of one stream.
type run struct {
	relay   *Relay
	encoder Encoder
	parent  context.Context // the client's
	ctx     context.Context // the upstream request's
	cancel  context.CancelCauseFunc
	dog     *watchdog
	begin   time.Time
	buf     []byte // the line being written
	res     Result
}

func (r *Relay) newRun(parent context.Context) *run {
	s := &run{relay: r, encoder: r.Encoder, parent: parent, begin: time.Now()}
	if s.encoder == nil {
		s.encoder = Plain{}
	}
	s.ctx, s.cancel = context.WithCancelCause(parent)
	s.dog = newWatchdog(r.FirstEventTimeout, r.IdleTimeout, r.Deadline, s.cancel)
	return s
}

func (s *run) stop() {
	s.dog.stop()
	s.cancel(nil)
}

// start opens the upstream and reads its first event.
func (s *run) start(open Open) (*Events, error) {
	res, err := open(s.ctx)
	if err != nil {
		if res != nil && res.Body != nil {
			res.Body.Close()
		}
		return nil, &ReadError{Err: err}
	}
	events := NewEvents(res, s.relay.MaxEventBytes)
	if !events.Next() {
		err := events.Err()
		if err == nil {
			err = ErrNoChunks
		}
		events.Close()
		return nil, &ReadError{Err: err}
	}
	s.dog.event()
	s.res.FirstEvent = time.Since(s.begin)
	return events, nil
}

// copy writes a line per content delta until the upstream ends. It returns
// nil when the stream is complete: a finish_reason or [DONE] arrived.
func (s *run) copy(events *Events, out *client) error {
	finished := false
	for {
		ev := events.Event()
		if ev.Usage != (Usage{}) {
			s.res.Usage = ev.Usage
		}
		if ev.FinishReason != "" {
			finished = true
		}
		if ev.Content != "" {
			if err := s.writeLine(out, ev.Content); err != nil {
				return err
			}
		}
		if !events.Next() {
			break
		}
		s.dog.event()
	}
	if err := events.Err(); err != nil {
		return &ReadError{Err: err}
	}
	if !finished && !events.Done() {
		return &ReadError{Err: ErrTruncated}
	}
	return nil
}

// maxKeptBuf is the largest line buffer a stream keeps between lines.
const maxKeptBuf = 16 << 10

// writeLine encodes content as the next line and writes it out.
func (s *run) writeLine(out *client, content string) error {
	if s.buf == nil {
		s.buf = make([]byte, 0, 256)
	}
	s.buf = s.encoder.AppendDelta(s.buf[:0], s.res.Lines+1, content)
	err := out.write(s.buf)
	if err == nil {
		s.res.Lines++
		s.res.Bytes += int64(len(s.buf))
	}
	if cap(s.buf) > maxKeptBuf {
		s.buf = nil
	}
	return err
}

// end fills in the outcome of a stream that ended with err, and gives the
// last lines of a failed stream a moment to reach a client still there.
func (s *run) end(err error) Result {
	s.res.Outcome, s.res.Err = s.classify(err)
	if s.res.Cut() && s.res.Outcome != ClientLeft && s.relay.AbortGrace > 0 {
		t := time.NewTimer(s.relay.AbortGrace)
		select {
		case <-t.C:
		case <-s.parent.Done():
		}
		t.Stop()
	}
	return s.res
}

// classify tells how a stream that ended with err went, and why: the client
// left, the server is stopping, one of the relay's timeouts, or the
// upstream failed.
func (s *run) classify(err error) (Outcome, error) {
	if err == nil {
		return Completed, nil
	}
	cause := context.Cause(s.ctx)
	var writeErr *WriteError
	switch {
	case errors.As(err, &writeErr):
		return ClientLeft, err
	case errors.Is(context.Cause(s.parent), ErrShutdown):
		return Shutdown, ErrShutdown
	case s.parent.Err() != nil && !s.res.Committed:
		return ClientGone, &WriteError{Err: ErrClientGone}
	case s.parent.Err() != nil:
		return ClientLeft, &WriteError{Err: ErrClientGone}
	case isTimeout(cause) && !s.res.Committed:
		return UpstreamTimeout, &ReadError{Err: cause}
	case isTimeout(cause):
		return UpstreamStalled, &ReadError{Err: cause}
	case !s.res.Committed:
		return UpstreamFailed, err
	case errors.Is(err, ErrTruncated):
		return UpstreamTruncated, err
	}
	return UpstreamCut, err
}

func isTimeout(cause error) bool {
	return errors.Is(cause, errFirstEventTimeout) || errors.Is(cause, errIdleTimeout) || errors.Is(cause, errDeadline)
}
