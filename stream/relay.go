package stream

import (
	"context"
	"errors"
	"net/http"
	"sync"
	"sync/atomic"
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
	// ErrCancelled is the cause to stop a stream with on request.
	ErrCancelled = errors.New("the stream was cancelled on request")
	// errGraceOver: the client left, and nobody resumed within the grace.
	errGraceOver = errors.New("the client left and nobody resumed within the grace period")
	// errDrained: the upstream's body did not end soon after [DONE].
	errDrained = errors.New("the upstream's body went on after [DONE]")
)

// After [DONE], how long and how far the relay reads on for the end of
// the upstream's body (see drainEnd).
const (
	drainWait  = 50 * time.Millisecond
	drainBytes = 4 << 10
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
	// KeepAlive is how long the client may go without a byte: the
	// encoder's keep-alive is written then, and the headers are committed
	// if the upstream's first event is still awaited. 0: none.
	KeepAlive time.Duration
}

// Options are what varies between the streams of one Relay.
type Options struct {
	Encoder Encoder // nil: the Relay's
	// Tee gets every line's content, numbered as the client's lines are,
	// even after the client left; nil: none.
	Tee Tee
	// Grace keeps the upstream going this long after the client left, and
	// for as long as Tee has readers; 0: the upstream stops with the
	// client. Needs Tee.
	Grace time.Duration
	// Detached runs without a client from the start: w is not written.
	Detached bool
	// Stop, when done, stops the upstream with its cause (ErrCancelled
	// for a Cancelled outcome); nil: none.
	Stop context.Context
}

// Tee is where a stream's lines go besides the client: a replay log.
type Tee interface {
	Append(content string)
	// Attached reports how many read the lines now, and when the last
	// reader left.
	Attached() (readers int, lastLeft time.Time)
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
	// FinishReason is the upstream's, when it gave one.
	FinishReason string
	// Detached is true when the client left and the stream went on for
	// the Tee; Outcome then says how the upstream ended.
	Detached bool
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
// leaves w untouched for an HTTP error (unless KeepAlive committed the
// headers first); then it writes the headers and a line per content delta.
// Lines are flushed whenever the relay is about to wait for the upstream, so
// each reaches the client at once, and lines whose events arrived together
// go out together. ctx is the client's request context.
func (r *Relay) Run(ctx context.Context, w http.ResponseWriter, open Open) Result {
	return r.RunWith(ctx, w, open, Options{})
}

// RunWith is Run with the options of one stream.
func (r *Relay) RunWith(ctx context.Context, w http.ResponseWriter, open Open, o Options) Result {
	s := r.newRun(ctx, o)
	defer s.stop()
	out := newClient(w, r.WriteTimeout)
	defer out.close()
	if r.KeepAlive > 0 && !o.Detached {
		out.startKeepAlives(r.KeepAlive, s.encoder.ContentType(), s.encoder.KeepAlive())
	}
	events, err := s.start(open)
	if err != nil {
		s.res.Committed = out.stopKeepAlives()
		return s.end(err)
	}
	defer events.Close()
	if !o.Detached {
		err = out.commit(s.encoder.ContentType())
		s.res.Committed = true
	}
	if err != nil && s.tee != nil && s.grace > 0 {
		s.leave()
		err = nil
	}
	if err == nil {
		err = s.copy(events, out)
	}
	s.res.Committed = out.stopKeepAlives()
	if first := out.firstAt(); !first.IsZero() {
		s.res.FirstLine = first.Sub(s.begin)
	}
	res := s.end(err)
	if err == nil && events.Done() {
		s.drainEnd(events)
	}
	return res
}

// drainEnd reads the end of the upstream's body after [DONE], which
// usually comes a moment later in a packet of its own, so that net/http
// can put the connection back in its pool: a body closed before its end
// closes the connection instead (net/http's bodyEOFSignal, earlyCloseFn),
// and the next stream dials again, with a TLS handshake over HTTPS/1.1.
// It waits at most drainWait, by cancelling the upstream request, for an
// upstream that keeps the body open.
func (s *run) drainEnd(events *Events) {
	t := time.AfterFunc(drainWait, func() { s.cancel(errDrained) })
	defer t.Stop()
	events.drain(drainBytes)
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
	n       int64  // lines numbered so far
	res     Result

	tee       Tee
	grace     time.Duration
	gone      atomic.Bool // the client left; lines go to the tee only
	leaveOnce sync.Once
	unwatch   []func() bool // stops the context.AfterFuncs
	mu        sync.Mutex
	graceT    *time.Timer
	stopped   bool
}

func (r *Relay) newRun(parent context.Context, o Options) *run {
	s := &run{relay: r, encoder: o.Encoder, parent: parent, begin: time.Now(), tee: o.Tee}
	if s.encoder == nil {
		s.encoder = r.Encoder
	}
	if s.encoder == nil {
		s.encoder = Plain{}
	}
	base := parent
	if o.Tee != nil && o.Grace > 0 {
		// The upstream outlives the client by the grace: detach it from
		// the client's context, and watch that context instead.
		s.grace = o.Grace
		base = context.WithoutCancel(parent)
	}
	s.ctx, s.cancel = context.WithCancelCause(base)
	s.dog = newWatchdog(r.FirstEventTimeout, r.IdleTimeout, r.Deadline, s.cancel)
	if o.Stop != nil {
		s.unwatch = append(s.unwatch, context.AfterFunc(o.Stop, func() { s.cancel(context.Cause(o.Stop)) }))
	}
	if s.grace > 0 {
		if o.Detached {
			s.leave()
		}
		s.unwatch = append(s.unwatch, context.AfterFunc(parent, s.leave))
	}
	return s
}

func (s *run) stop() {
	s.dog.stop()
	for _, f := range s.unwatch {
		f()
	}
	s.mu.Lock()
	s.stopped = true
	if s.graceT != nil {
		s.graceT.Stop()
	}
	s.mu.Unlock()
	s.cancel(nil)
}

// leave notes that the client went away: from now on lines go to the tee
// only, and the grace period runs. A server shutting down stops at once.
func (s *run) leave() {
	s.leaveOnce.Do(func() {
		s.gone.Store(true)
		if errors.Is(context.Cause(s.parent), ErrShutdown) {
			s.cancel(ErrShutdown)
			return
		}
		s.mu.Lock()
		defer s.mu.Unlock()
		if !s.stopped {
			s.graceT = time.AfterFunc(s.grace, s.checkGrace)
		}
	})
}

// checkGrace stops the upstream once nobody has read the tee for the grace
// period, and otherwise looks again when that could next be so.
func (s *run) checkGrace() {
	readers, lastLeft := s.tee.Attached()
	wait := s.grace
	if readers == 0 {
		wait = s.grace - time.Since(lastLeft)
		if lastLeft.IsZero() || wait <= 0 {
			s.cancel(errGraceOver)
			return
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.stopped {
		s.graceT.Reset(wait)
	}
}

// start opens the upstream and reads its first event.
func (s *run) start(open Open) (*Events, error) {
	res, err := s.open(open)
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

// open calls open on a stack of its own (see onOwnStack).
func (s *run) open(open Open) (*http.Response, error) {
	type opened struct {
		res *http.Response
		err error
	}
	o := onOwnStack(func() opened {
		res, err := open(s.ctx)
		return opened{res, err}
	})
	return o.res, o.err
}

// copy writes a line per content delta until the upstream ends. It returns
// nil when the stream is complete: a finish_reason or [DONE] arrived.
func (s *run) copy(events *Events, out *client) error {
	flush := func() error { return s.flush(out) }
	events.BeforeRead(flush)
	err := s.copyEvents(events, out)
	if ferr := flush(); err == nil {
		err = ferr
	}
	return err
}

// flush sends the lines written since the last flush. Like line, it lets a
// stream with a grace period go on without its client.
func (s *run) flush(out *client) error {
	if s.gone.Load() {
		return nil
	}
	err := out.flush()
	if err != nil && s.grace > 0 {
		s.leave()
		return nil
	}
	return err
}

// copyEvents writes the lines of copy, leaving the last ones to flush.
func (s *run) copyEvents(events *Events, out *client) error {
	finished := false
	for {
		ev := events.Event()
		if ev.Usage != (Usage{}) {
			s.res.Usage = ev.Usage
		}
		if ev.FinishReason != "" {
			finished = true
			s.res.FinishReason = ev.FinishReason
		}
		if ev.Content != "" {
			if err := s.line(out, ev.Content); err != nil {
				return err
			}
		}
		if !events.Next() {
			break
		}
		s.dog.event()
	}
	var writeErr *WriteError
	if err := events.Err(); errors.As(err, &writeErr) {
		return err // a flush before a read failed
	} else if err != nil {
		return &ReadError{Err: err}
	}
	if !finished && !events.Done() {
		return &ReadError{Err: ErrTruncated}
	}
	return nil
}

// line numbers content, hands it to the tee and writes it to the client
// while the client is there. A client that leaves a stream with a grace
// period is no error: the stream goes on for the tee.
func (s *run) line(out *client, content string) error {
	s.n++
	if s.tee != nil {
		s.tee.Append(content)
	}
	if s.gone.Load() {
		return nil
	}
	err := s.writeLine(out, content)
	if err != nil && s.grace > 0 {
		s.leave()
		return nil
	}
	return err
}

// maxKeptBuf is the largest line buffer a stream keeps between lines.
const maxKeptBuf = 16 << 10

// writeLine encodes content as the next line and writes it out.
func (s *run) writeLine(out *client, content string) error {
	if s.buf == nil {
		s.buf = make([]byte, 0, 256)
	}
	s.buf = s.encoder.AppendDelta(s.buf[:0], s.n, content)
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
	s.res.Detached = s.gone.Load()
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
	clientGone := s.parent.Err() != nil && s.grace == 0 || errors.Is(cause, errGraceOver)
	var writeErr *WriteError
	switch {
	case errors.As(err, &writeErr):
		return ClientLeft, err
	case errors.Is(context.Cause(s.parent), ErrShutdown), errors.Is(cause, ErrShutdown):
		return Shutdown, ErrShutdown
	case errors.Is(cause, ErrCancelled):
		return Cancelled, &ReadError{Err: cause}
	case clientGone && !s.res.Committed:
		return ClientGone, &WriteError{Err: ErrClientGone}
	case clientGone:
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
