package stream

import (
	"context"
	"errors"
	"sync/atomic"
	"time"
)

// Causes the relay cancels its upstream request with.
var (
	errFirstEventTimeout = errors.New("no first event from the upstream within the first-event timeout")
	errIdleTimeout       = errors.New("no event from the upstream within the idle timeout")
	errDeadline          = errors.New("the stream ran past its deadline")
)

// watchdog cancels the upstream request when the upstream stays silent,
// longer than first before its first event or longer than idle between
// events, and when the stream runs past its deadline. The hot path only
// stamps the time of each event; the one timer fires at most once per idle
// period and re-arms itself for what is left.
type watchdog struct {
	timer    *time.Timer
	cancel   context.CancelCauseFunc
	first    time.Duration
	idle     time.Duration
	deadline time.Duration // from base; 0: none
	base     time.Time     // monotonic origin of the times below
	last     atomic.Int64  // nanoseconds from base to the last event; 0: none yet
}

// newWatchdog starts the timer; cancel is the upstream request's.
// A timeout or deadline of 0 or less is none.
func newWatchdog(first, idle, deadline time.Duration, cancel context.CancelCauseFunc) *watchdog {
	if first <= 0 {
		first = never
	}
	if idle <= 0 {
		idle = never
	}
	w := &watchdog{cancel: cancel, first: first, idle: idle, deadline: deadline, base: time.Now()}
	wait, _ := w.check(0)
	w.timer = time.AfterFunc(wait, w.fire)
	return w
}

// never is a timeout that does not come.
const never = time.Duration(1 << 62)

// event notes that an event arrived now.
func (w *watchdog) event() {
	first := w.last.Load() == 0
	w.last.Store(max(1, int64(time.Since(w.base))))
	if first {
		wait, _ := w.check(time.Since(w.base))
		w.timer.Reset(wait)
	}
}

// fire runs when the timer does: it cancels, or re-arms for what is left.
func (w *watchdog) fire() {
	wait, cause := w.check(time.Since(w.base))
	if cause != nil {
		w.cancel(cause)
		return
	}
	w.timer.Reset(wait)
}

// check returns, for the time now (from base), how long until the next
// check is due, or else the cause to cancel with.
func (w *watchdog) check(now time.Duration) (time.Duration, error) {
	cause, wait := errIdleTimeout, time.Duration(w.last.Load())+w.idle-now
	if w.last.Load() == 0 {
		cause, wait = errFirstEventTimeout, w.first-now
	}
	if w.deadline > 0 && w.deadline-now < wait {
		cause, wait = errDeadline, w.deadline-now
	}
	if wait <= 0 {
		return 0, cause
	}
	return wait, nil
}

// stop ends the watch.
func (w *watchdog) stop() { w.timer.Stop() }
