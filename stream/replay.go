package stream

import (
	"net/http"
)

// Lines is a stream's replay being read, as a resume.Cursor reads it: Next
// waits for the next line and reports false at the end or when reading
// must stop.
type Lines interface {
	Next() bool
	Line() (n int64, content []byte)
}

// Replay writes lines to w in enc's framing, as Run writes a live stream:
// the same headers at once, then each line flushed, with keep-alives while
// it waits. It returns the number of lines written, and a *WriteError if
// the client left. The caller writes the end, or cuts.
func (r *Relay) Replay(w http.ResponseWriter, lines Lines, enc Encoder) (int64, error) {
	out := newClient(w, r.WriteTimeout)
	defer out.close()
	if err := out.commit(enc.ContentType()); err != nil {
		return 0, err
	}
	if r.KeepAlive > 0 {
		out.startKeepAlives(r.KeepAlive, enc.ContentType(), enc.KeepAlive())
	}
	var buf []byte
	written := int64(0)
	for lines.Next() {
		n, content := lines.Line()
		buf = enc.AppendDelta(buf[:0], n, string(content))
		err := out.write(buf)
		if err == nil {
			// Next may wait for a live line: send this one first.
			err = out.flush()
		}
		if err != nil {
			return written, err
		}
		written++
	}
	return written, nil
}
