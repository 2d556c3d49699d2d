package stream

import (
	"bufio"
	"io"
	"strconv"
	"strings"
)

// The SSE framing of a stream, for EventSource clients: each delta is one
// event, "id: N" and then its content as "data:" lines split at its
// newlines, so nothing is escaped. A normal end is an event named done and
// a failure an event named error, each with JSON data; ": keep-alive" is a
// comment that parsers skip.

// KeepAliveEvent is the SSE keep-alive: a comment, then the blank line.
const KeepAliveEvent = ": keep-alive\n\n"

// KeepAliveLine is the plain framing's keep-alive: an empty line.
const KeepAliveLine = "\n"

// AppendEvent appends content as one SSE event numbered n, and returns the
// extended buffer. Content split at "\r\n", "\r" and "\n" becomes one data
// line per piece; an SSE parser joins them with "\n" again.
func AppendEvent(dst []byte, n int64, content string) []byte {
	dst = append(dst, "id: "...)
	dst = strconv.AppendInt(dst, n, 10)
	dst = append(dst, '\n')
	dst = appendData(dst, content)
	return append(dst, '\n')
}

// AppendNamedEvent appends an event with a name and data, without an id,
// so that a client's Last-Event-ID stays at the last delta.
func AppendNamedEvent(dst []byte, name, data string) []byte {
	dst = append(dst, "event: "...)
	dst = append(dst, name...)
	dst = append(dst, '\n')
	dst = appendData(dst, data)
	return append(dst, '\n')
}

// appendData appends s as data lines, one per newline-separated piece.
func appendData(dst []byte, s string) []byte {
	for {
		i := strings.IndexAny(s, "\r\n")
		if i < 0 {
			break
		}
		dst = append(dst, "data: "...)
		dst = append(dst, s[:i]...)
		dst = append(dst, '\n')
		if s[i] == '\r' && i+1 < len(s) && s[i+1] == '\n' {
			i++
		}
		s = s[i+1:]
	}
	dst = append(dst, "data: "...)
	dst = append(dst, s...)
	return append(dst, '\n')
}

// ServerEvent is one server-sent event as an EventReader reads it.
type ServerEvent struct {
	ID   string // the last id seen, as EventSource keeps it
	Name string // "" for a delta, else "done" or "error"
	Data string // the data lines joined with "\n"
}

// EventReader reads an SSE body into events, as the HTML standard's parser
// does: lines end in "\r\n", "\r" or "\n"; comments are skipped; an event
// is dispatched at a blank line if it has data. Call Next until it returns
// false, then check Err. An incomplete last event is dropped, as a browser
// drops it, and a body that ends mid-event reports io.ErrUnexpectedEOF.
type EventReader struct {
	r      *bufio.Reader
	skipLF bool // the last line ended in '\r': a '\n' next belongs to it
	lastID string
	cur    ServerEvent
	err    error
}

// NewEventReader returns an EventReader reading from r.
func NewEventReader(r io.Reader) *EventReader {
	return &EventReader{r: bufio.NewReader(r)}
}

// Next advances to the next event and reports whether there is one.
func (er *EventReader) Next() bool {
	var name, data strings.Builder
	hasData, pending := false, false
	for er.err == nil {
		line, err := er.readLine()
		if err != nil {
			if err == io.EOF && pending {
				err = io.ErrUnexpectedEOF
			}
			er.err = err
			return false
		}
		if line == "" {
			if hasData {
				s := data.String()
				er.cur = ServerEvent{ID: er.lastID, Name: name.String(), Data: s[:len(s)-1]}
				return true
			}
			name.Reset()
			pending = false
			continue
		}
		pending = true
		field, value, _ := strings.Cut(line, ":")
		value = strings.TrimPrefix(value, " ")
		switch field {
		case "id":
			er.lastID = value
		case "event":
			name.Reset()
			name.WriteString(value)
		case "data":
			data.WriteString(value)
			data.WriteByte('\n')
			hasData = true
		}
	}
	return false
}

// readLine returns the next line without its terminator, which may be
// "\r\n", "\r" or "\n". It never waits for the byte after a '\r'.
func (er *EventReader) readLine() (string, error) {
	var b strings.Builder
	for {
		c, err := er.r.ReadByte()
		if err != nil {
			if err == io.EOF && b.Len() > 0 {
				return "", io.ErrUnexpectedEOF
			}
			return "", err
		}
		skip := er.skipLF
		er.skipLF = false
		switch {
		case c == '\n' && skip:
			continue
		case c == '\n':
			return b.String(), nil
		case c == '\r':
			er.skipLF = true
			return b.String(), nil
		}
		if b.Len() >= maxLine {
			return "", ErrLineTooLong
		}
		b.WriteByte(c)
	}
}

// Event returns the current event.
func (er *EventReader) Event() ServerEvent { return er.cur }

// Err returns the first error other than io.EOF, or nil after a clean end.
func (er *EventReader) Err() error {
	if er.err == io.EOF {
		return nil
	}
	return er.err
}
