package stream

// Outcome says how a stream ended. The caller maps it to a status, a
// metric label and a log level.
type Outcome uint8

const (
	// Completed: the upstream finished (finish_reason or [DONE]) and every
	// line was written.
	Completed Outcome = iota
	// ClientGone: the client left before the upstream's first event;
	// nothing was written.
	ClientGone
	// ClientLeft: the client left or stopped reading after the answer
	// started.
	ClientLeft
	// UpstreamFailed: the upstream refused, failed or ended before its
	// first event; Err says how.
	UpstreamFailed
	// UpstreamTimeout: no first event within the first-event timeout or
	// the stream's deadline.
	UpstreamTimeout
	// UpstreamCut: after the first event, a read error, a malformed or
	// oversized event, or an error event.
	UpstreamCut
	// UpstreamTruncated: the body ended with neither a finish_reason nor
	// [DONE].
	UpstreamTruncated
	// UpstreamStalled: after the first event, no event within the idle
	// timeout, or the stream ran past its deadline.
	UpstreamStalled
	// Shutdown: the server stopped the stream.
	Shutdown
	// Cancelled: the stream was stopped on request (Options.Stop).
	Cancelled

	// NumOutcomes is the number of outcomes, for tables indexed by them.
	NumOutcomes
)

var outcomeNames = [NumOutcomes]string{
	"completed", "client_gone", "client_left", "upstream_failed", "upstream_timeout",
	"upstream_cut", "upstream_truncated", "upstream_stalled", "shutdown", "cancelled",
}

// String returns the outcome's name in snake case.
func (o Outcome) String() string {
	if o < NumOutcomes {
		return outcomeNames[o]
	}
	return "unknown"
}
