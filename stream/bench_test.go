package stream

import (
	"bytes"
	"io"
	"net/http"
	"runtime"
	"strconv"
	"strings"
	"testing"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/packages/ssestream"

	"streamrelay/internal/upstreamtest"
)

// benchDelta is a delta as the benchmark's upstream stamps it.
const benchDelta = "T1763700000123456789|w42 "

// newSDKStream parses an SSE body with openai-go, as the relay does.
func newSDKStream(r io.Reader) *ssestream.Stream[openai.ChatCompletionChunk] {
	res := &http.Response{
		Header: http.Header{"Content-Type": {"text/event-stream"}},
		Body:   io.NopCloser(r),
	}
	return ssestream.NewStream[openai.ChatCompletionChunk](ssestream.NewDecoder(res), nil)
}

// BenchmarkAppendLine encodes one delta into a line: no allocation.
func BenchmarkAppendLine(b *testing.B) {
	for name, delta := range map[string]string{"plain": benchDelta, "newlines": "a\nb\r\nc"} {
		b.Run(name, func(b *testing.B) {
			buf := make([]byte, 0, 64)
			b.ReportAllocs()
			for b.Loop() {
				buf = AppendLine(buf[:0], delta)
			}
		})
	}
}

// repeatReader reads its data over and over, without end.
type repeatReader struct {
	data []byte
	off  int
}

func (r *repeatReader) Read(p []byte) (int, error) {
	n := 0
	for n < len(p) {
		c := copy(p[n:], r.data[r.off:])
		n += c
		r.off = (r.off + c) % len(r.data)
	}
	return n, nil
}

// BenchmarkParseChunk parses one content chunk through the SDK: SSE framing,
// its "error" probe and the JSON decoding into openai.ChatCompletionChunk.
func BenchmarkParseChunk(b *testing.B) {
	s := newSDKStream(&repeatReader{data: []byte(upstreamtest.Content(benchDelta))})
	b.ReportAllocs()
	for b.Loop() {
		if !s.Next() {
			b.Fatal(s.Err())
		}
		if s.Current().Choices[0].Delta.Content != benchDelta {
			b.Fatal("wrong content")
		}
	}
}

// BenchmarkRelay runs the whole relay loop over an in-memory upstream of
// k content deltas: parse every chunk with the SDK, encode, write, flush.
// ns/delta and allocs/delta include the stream's own setup, spread over k.
func BenchmarkRelay(b *testing.B) {
	for _, k := range []int{10, 100} {
		b.Run("k="+strconv.Itoa(k), func(b *testing.B) {
			deltas := make([]string, k)
			for i := range deltas {
				deltas[i] = benchDelta
			}
			body := []byte(strings.Join(upstreamtest.Answer(deltas...), ""))
			noFlush := func() error { return nil }
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			b.ReportAllocs()
			for b.Loop() {
				src := newSDKStream(bytes.NewReader(body))
				r := NewRelay(src)
				if err := r.Start(); err != nil {
					b.Fatal(err)
				}
				if err := r.Copy(io.Discard, noFlush); err != nil {
					b.Fatal(err)
				}
				if r.Lines != int64(k) {
					b.Fatalf("relayed %d lines, want %d", r.Lines, k)
				}
				src.Close()
			}
			runtime.ReadMemStats(&after)
			n := float64(b.N) * float64(k)
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/n, "ns/delta")
			b.ReportMetric(float64(after.Mallocs-before.Mallocs)/n, "allocs/delta")
			b.ReportMetric(float64(after.TotalAlloc-before.TotalAlloc)/n, "B/delta")
		})
	}
}

// BenchmarkRelayStack measures the memory a relay holds while it waits for
// its upstream's next chunk: n relays each parse a few chunks, then park in
// the SDK's read; the goroutine stacks and the heap kept alive are
// reported per relay.
func BenchmarkRelayStack(b *testing.B) {
	const n = 1000
	for b.Loop() {
		var before, parked runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		writers := make([]*io.PipeWriter, n)
		done := make(chan error, n)
		for i := range writers {
			pr, pw := io.Pipe()
			writers[i] = pw
			go func() {
				r := NewRelay(newSDKStream(pr))
				err := r.Start()
				if err == nil {
					err = r.Copy(io.Discard, func() error { return nil })
				}
				done <- err
			}()
			io.WriteString(pw, upstreamtest.Role()+upstreamtest.Content(benchDelta)+upstreamtest.Content(benchDelta))
		}
		runtime.GC()
		runtime.ReadMemStats(&parked)
		b.ReportMetric(float64(parked.StackInuse-before.StackInuse)/n, "stack-B/relay")
		b.ReportMetric(float64(parked.HeapAlloc-before.HeapAlloc)/n, "heap-B/relay")
		for _, pw := range writers {
			io.WriteString(pw, upstreamtest.Finish("stop")+upstreamtest.Done)
			pw.Close()
		}
		for range n {
			if err := <-done; err != nil {
				b.Fatal(err)
			}
		}
	}
}
