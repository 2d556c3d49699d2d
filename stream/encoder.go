package stream

// Encoder frames a stream's content for the client: the body's media type
// and the bytes of each line. The relay numbers the lines from 1, so that an
// encoder can give them ids.
type Encoder interface {
	// ContentType is the body's Content-Type.
	ContentType() string
	// AppendDelta appends line n, carrying content, to dst and returns the
	// extended buffer.
	AppendDelta(dst []byte, n int64, content string) []byte
}

// Plain is the plain-text wire format: one line per delta, see AppendLine.
type Plain struct{}

// ContentType returns "text/plain; charset=utf-8".
func (Plain) ContentType() string { return "text/plain; charset=utf-8" }

// AppendDelta appends content as one line; plain text has no line ids.
func (Plain) AppendDelta(dst []byte, _ int64, content string) []byte {
	return AppendLine(dst, content)
}
