// Package stream holds the relay's wire format and the loop that moves an
// upstream's content deltas to a client, one line per delta.
//
// The wire format: each delta becomes exactly one line, the delta's text with
// every "\r\n", "\r" and "\n" replaced by Break, then "\n". Empty lines carry
// nothing and are reserved for keep-alives, so readers skip them. Text that
// itself contains Break comes back with a newline in its place: a known limit
// of the format.
package stream

import (
	"bufio"
	"io"
	"strings"
)

// Break stands for a newline inside a line.
const Break = "<br />"

// maxLine bounds one line a LineReader accepts; a delta is far smaller.
const maxLine = 16 << 20

// AppendLine appends content to dst as one encoded line, ending in '\n', and
// returns the extended buffer. It allocates only when dst is too small.
func AppendLine(dst []byte, content string) []byte {
	for {
		i := strings.IndexAny(content, "\r\n")
		if i < 0 {
			break
		}
		dst = append(dst, content[:i]...)
		dst = append(dst, Break...)
		if content[i] == '\r' && i+1 < len(content) && content[i+1] == '\n' {
			i++
		}
		content = content[i+1:]
	}
	dst = append(dst, content...)
	return append(dst, '\n')
}

// DecodeLine restores the newlines of one line read without its '\n'.
func DecodeLine(line string) string {
	return strings.ReplaceAll(line, Break, "\n")
}

// LineReader reads the relay's body back into deltas, in the style of
// bufio.Scanner: call Next until it returns false, then check Err.
// Empty lines are skipped. A body that ends without a final '\n' still
// yields its last line; an abrupt end shows up in Err.
type LineReader struct {
	r   *bufio.Reader
	cur string
	err error
}

// NewLineReader returns a LineReader reading from r.
func NewLineReader(r io.Reader) *LineReader {
	return &LineReader{r: bufio.NewReader(r)}
}

// Next advances to the next non-empty line and reports whether there is one.
func (lr *LineReader) Next() bool {
	for lr.err == nil {
		line, err := lr.readLine()
		if err != nil && (err != io.EOF || line == "") {
			lr.err = err
			return false
		}
		if line == "" {
			continue
		}
		lr.cur = DecodeLine(line)
		if err == io.EOF {
			lr.err = io.EOF
		}
		return true
	}
	return false
}

// readLine returns one line without its '\n', joining reads of a long line.
func (lr *LineReader) readLine() (string, error) {
	frag, err := lr.r.ReadSlice('\n')
	if err != bufio.ErrBufferFull {
		return strings.TrimSuffix(string(frag), "\n"), err
	}
	var b strings.Builder
	b.Write(frag)
	for err == bufio.ErrBufferFull {
		if b.Len() > maxLine {
			return "", ErrLineTooLong
		}
		frag, err = lr.r.ReadSlice('\n')
		b.Write(frag)
	}
	return strings.TrimSuffix(b.String(), "\n"), err
}

// Text returns the current delta, newlines restored.
func (lr *LineReader) Text() string { return lr.cur }

// Err returns the first error other than io.EOF, or nil after a clean end.
func (lr *LineReader) Err() error {
	if lr.err == io.EOF {
		return nil
	}
	return lr.err
}

// ReadAll reads every delta from r and returns them joined: the answer text.
func ReadAll(r io.Reader) (string, error) {
	var b strings.Builder
	lr := NewLineReader(r)
	for lr.Next() {
		b.WriteString(lr.Text())
	}
	return b.String(), lr.Err()
}

// Encoded returns content as one encoded line, for tests and examples.
func Encoded(content string) string { return string(AppendLine(nil, content)) }
