package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Level is one load: C concurrent streams of K deltas, one every D.
type Level struct {
	C int
	D time.Duration
	K int
}

func (lv Level) String() string { return fmt.Sprintf("C=%d D=%v K=%d", lv.C, lv.D, lv.K) }

// body is how a target's response is read: the relay's lines, or the
// upstream's SSE (directly or through nginx).
type body int

const (
	lines body = iota
	sse
)

// endpoint is where the load goes and how to read what comes back.
type endpoint struct {
	url   string
	body  body
	build func(maxTokens int) string // the request body
}

func serverEndpoint(addr string) endpoint {
	return endpoint{url: "http://" + addr + "/message/stream", body: lines, build: func(n int) string {
		if n > 0 {
			return `{"prompt":"bench","max_tokens":` + strconv.Itoa(n) + `}`
		}
		return `{"prompt":"bench"}`
	}}
}

func sseEndpoint(addr string) endpoint {
	return endpoint{url: "http://" + addr + "/v1/chat/completions", body: sse, build: func(n int) string {
		limit := ""
		if n > 0 {
			limit = `,"max_tokens":` + strconv.Itoa(n)
		}
		return `{"model":"demo","messages":[{"role":"user","content":"bench"}],"stream":true,` +
			`"stream_options":{"include_usage":true}` + limit + `}`
	}}
}

// loadResult is what the client saw of one level against one target.
type loadResult struct {
	ok, failed int
	expected   int64
	received   int64
	added      []int64 // per delta: receive time minus send stamp, ns
	ttfl       []int64 // per stream: request start to first delta, ns
	errors     map[string]int
	wall       time.Duration
}

// newClient returns a client that opens one connection per stream, as
// browsers behind a relay do, and asks for no compression.
func newClient() *http.Client {
	return &http.Client{Transport: &http.Transport{
		DialContext:         (&net.Dialer{Timeout: 30 * time.Second}).DialContext,
		DisableKeepAlives:   true,
		DisableCompression:  true,
		MaxIdleConnsPerHost: -1,
		WriteBufferSize:     1 << 10,
		ReadBufferSize:      4 << 10,
	}}
}

// drive runs lv against ep: C streams, started evenly over ramp, each
// given until timeout. open counts the streams in flight.
func drive(ctx context.Context, client *http.Client, ep endpoint, lv Level, ramp, timeout time.Duration, open *atomic.Int64) *loadResult {
	res := &loadResult{errors: map[string]int{}, expected: int64(lv.C) * int64(lv.K)}
	var mu sync.Mutex
	var wg sync.WaitGroup
	start := time.Now()
	for i := 0; i < lv.C; i++ {
		at := start.Add(time.Duration(int64(ramp) * int64(i) / int64(lv.C)))
		if d := time.Until(at); d > 0 {
			select {
			case <-ctx.Done():
			case <-time.After(d):
			}
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			open.Add(1)
			defer open.Add(-1)
			s := runStream(ctx, client, ep, lv.K, timeout)
			mu.Lock()
			defer mu.Unlock()
			res.received += int64(s.received)
			res.added = append(res.added, s.added...)
			if s.ttfl > 0 {
				res.ttfl = append(res.ttfl, int64(s.ttfl))
			}
			if s.err != nil {
				res.failed++
				res.errors[s.err.Error()]++
				return
			}
			res.ok++
		}()
	}
	wg.Wait()
	res.wall = time.Since(start)
	return res
}

// streamResult is one stream's outcome.
type streamResult struct {
	received int
	added    []int64
	ttfl     time.Duration
	err      error
}

// runStream makes one request and reads its deltas. It fails unless all k
// deltas came, in order, and the body ended cleanly.
func runStream(ctx context.Context, client *http.Client, ep endpoint, k int, timeout time.Duration) streamResult {
	var s streamResult
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	begin := time.Now()
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, ep.url, strings.NewReader(ep.build(0)))
	req.Header.Set("Content-Type", "application/json")
	res, err := client.Do(req)
	if err != nil {
		s.err = shortErr("request", err)
		return s
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		s.err = fmt.Errorf("status %d", res.StatusCode)
		return s
	}
	s.added = make([]int64, 0, k)
	done := false
	err = readDeltas(res.Body, ep.body, func(stamp int64, seq int) error {
		now := time.Now()
		if s.received == 0 {
			s.ttfl = now.Sub(begin)
		}
		s.received++
		if seq != s.received {
			return fmt.Errorf("delta %d arrived as number %d", seq, s.received)
		}
		s.added = append(s.added, now.UnixNano()-stamp)
		return nil
	}, func() { done = true })
	switch {
	case err != nil:
		s.err = shortErr("reading", err)
	case s.received != k:
		s.err = fmt.Errorf("got %d deltas, want %d", s.received, k)
	case ep.body == sse && !done:
		s.err = errors.New("no [DONE]")
	}
	return s
}

// shortErr names the step and keeps the error's last part, so that one
// cause gives one key however many streams it hits.
func shortErr(step string, err error) error {
	msg := err.Error()
	if i := strings.LastIndex(msg, ": "); i >= 0 {
		msg = msg[i+2:]
	}
	return fmt.Errorf("%s: %s", step, msg)
}

// readDeltas reads a body to its end, calling delta for each stamped delta
// with its stamp and sequence number, and done when an SSE body says
// [DONE]. The relay's body is one line per delta, "T<nanos>|w<seq> "; an
// SSE body carries the same text as the "content" of a data event's JSON.
func readDeltas(r io.Reader, kind body, delta func(stamp int64, seq int) error, done func()) error {
	br := bufio.NewReaderSize(r, 4<<10)
	for {
		line, err := br.ReadSlice('\n')
		if len(line) > 0 {
			text := line
			if kind == sse {
				text = nil
				data, ok := bytes.CutPrefix(line, []byte("data: "))
				if ok && bytes.HasPrefix(data, []byte("[DONE]")) {
					done()
				}
				if i := bytes.Index(data, []byte(`"content":"T`)); ok && i >= 0 {
					text = data[i+len(`"content":"`):]
				}
			}
			if len(text) > 0 && text[0] == 'T' {
				stamp, seq, perr := parseStamp(text)
				if perr != nil {
					return perr
				}
				if derr := delta(stamp, seq); derr != nil {
					return derr
				}
			}
		}
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
	}
}

// parseStamp reads "T<nanos>|w<seq> ..." at the start of b.
func parseStamp(b []byte) (stamp int64, seq int, err error) {
	bar := bytes.IndexByte(b, '|')
	if bar < 2 || len(b) < bar+3 || b[bar+1] != 'w' {
		return 0, 0, fmt.Errorf("bad delta %.40q", b)
	}
	stamp, err = strconv.ParseInt(string(b[1:bar]), 10, 64)
	if err != nil {
		return 0, 0, fmt.Errorf("bad stamp %.40q", b)
	}
	rest := b[bar+2:]
	end := bytes.IndexByte(rest, ' ')
	if end < 1 {
		return 0, 0, fmt.Errorf("bad delta %.40q", b)
	}
	seq, err = strconv.Atoi(string(rest[:end]))
	if err != nil {
		return 0, 0, fmt.Errorf("bad sequence %.40q", b)
	}
	return stamp, seq, nil
}

// warmUp makes n concurrent one-delta streams, so that the process under
// measurement has its connection pool and code paths warm before "idle" is
// measured.
func warmUp(ctx context.Context, client *http.Client, ep endpoint, n int) error {
	errs := make(chan error, n)
	for range n {
		go func() {
			ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
			defer cancel()
			req, _ := http.NewRequestWithContext(ctx, http.MethodPost, ep.url, strings.NewReader(ep.build(2)))
			req.Header.Set("Content-Type", "application/json")
			res, err := client.Do(req)
			if err == nil {
				_, err = io.Copy(io.Discard, res.Body)
				res.Body.Close()
				if err == nil && res.StatusCode != http.StatusOK {
					err = errors.New(res.Status)
				}
			}
			errs <- err
		}()
	}
	var first error
	for range n {
		if err := <-errs; err != nil && first == nil {
			first = err
		}
	}
	return first
}
