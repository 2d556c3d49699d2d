package stream

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/packages/ssestream"

	"streamrelay/internal/upstreamtest"
	"streamrelay/resume"
)

// benchDelta is a delta as the benchmark's upstream stamps it.
const benchDelta = "T1763700000123456789|w42 "

// benchEvent is a typical upstream event, as the demo upstream and OpenAI
// send them.
var benchEvent = `data: {"id":"chatcmpl-demo-123","object":"chat.completion.chunk","created":1763700000,"model":"demo",` +
	`"choices":[{"index":0,"delta":{"content":"` + benchDelta + `"},"logprobs":null,"finish_reason":null}]}` + "\n\n"

// BenchmarkAppendLine encodes one delta into a line: no allocation.
func BenchmarkAppendLine(b *testing.B) {
	for name, delta := range map[string]string{"plain": benchDelta, "newlines": "a\nb\r\nc"} {
		b.Run(name, func(b *testing.B) {
			buf := make([]byte, 0, 64)
			b.ReportAllocs()
			reportCPU(b)
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

func (r *repeatReader) Close() error { return nil }

func sseResponse(body io.ReadCloser) *http.Response {
	return &http.Response{Header: http.Header{"Content-Type": {"text/event-stream"}}, Body: body}
}

// BenchmarkDecodeEvent reads one typical event from an SSE body: "relay"
// as the relay does (openai-go's ssestream decoder, the event cap and
// ParseEvent); "sdk-struct" through the SDK's typed Stream into a small
// struct, and "sdk-chunk" into openai.ChatCompletionChunk, as the relay did
// before. The machine is shared: compare within one run, by cpu-ns/op.
func BenchmarkDecodeEvent(b *testing.B) {
	body := func() *repeatReader { return &repeatReader{data: []byte(benchEvent)} }
	b.Run("relay", func(b *testing.B) {
		events := NewEvents(sseResponse(body()), 0)
		b.ReportAllocs()
		reportCPU(b)
		for b.Loop() {
			if !events.Next() || events.Event().Content != benchDelta {
				b.Fatal(events.Err())
			}
		}
	})
	b.Run("sdk-struct", func(b *testing.B) {
		s := ssestream.NewStream[smallChunk](ssestream.NewDecoder(sseResponse(body())), nil)
		b.ReportAllocs()
		reportCPU(b)
		for b.Loop() {
			if !s.Next() || s.Current().Choices[0].Delta.Content != benchDelta {
				b.Fatal(s.Err())
			}
		}
	})
	b.Run("sdk-chunk", func(b *testing.B) {
		s := ssestream.NewStream[openai.ChatCompletionChunk](ssestream.NewDecoder(sseResponse(body())), nil)
		b.ReportAllocs()
		reportCPU(b)
		for b.Loop() {
			if !s.Next() || s.Current().Choices[0].Delta.Content != benchDelta {
				b.Fatal(s.Err())
			}
		}
	})
}

// smallChunk is the alternative to ParseEvent measured against it: the
// same fields through encoding/json into a small struct.
type smallChunk struct {
	Choices []struct {
		Delta struct {
			Content string `json:"content"`
		} `json:"delta"`
		FinishReason string `json:"finish_reason"`
	} `json:"choices"`
	Usage *struct {
		PromptTokens     int64 `json:"prompt_tokens"`
		CompletionTokens int64 `json:"completion_tokens"`
	} `json:"usage"`
	Error json.RawMessage `json:"error"`
}

// BenchmarkParseEvent compares ways to decode one event's data: gjson, as
// ParseEvent does, and encoding/json into a small struct.
func BenchmarkParseEvent(b *testing.B) {
	data := []byte(strings.TrimSuffix(strings.TrimPrefix(benchEvent, "data: "), "\n\n"))
	b.Run("gjson", func(b *testing.B) {
		b.ReportAllocs()
		reportCPU(b)
		for b.Loop() {
			var ev Event
			if err := ParseEvent(data, &ev); err != nil || ev.Content != benchDelta {
				b.Fatal(err)
			}
		}
	})
	b.Run("struct", func(b *testing.B) {
		b.ReportAllocs()
		reportCPU(b)
		for b.Loop() {
			var c smallChunk
			if err := json.Unmarshal(data, &c); err != nil || c.Choices[0].Delta.Content != benchDelta {
				b.Fatal(err)
			}
		}
	})
}

// discard is a client that keeps nothing.
type discard struct{ h http.Header }

func (d *discard) Header() http.Header         { return d.h }
func (d *discard) Write(p []byte) (int, error) { return len(p), nil }
func (d *discard) WriteHeader(int)             {}
func (d *discard) FlushError() error           { return nil }

// BenchmarkRelay runs the whole relay over an in-memory upstream of k
// content deltas: decode every event, encode, write, flush. ns/delta and
// allocs/delta include the stream's own setup, spread over k.
func BenchmarkRelay(b *testing.B) {
	for _, tee := range []bool{false, true} {
		for _, k := range []int{10, 100} {
			benchRelay(b, k, tee)
		}
	}
}

// benchRelay is one case of BenchmarkRelay; with tee, every stream also
// writes its replay log to an in-process resume store, as the server does.
func benchRelay(b *testing.B, k int, tee bool) {
	store := resume.NewMemory(resume.Limits{TTL: time.Minute, MaxBytes: 1 << 20, Memory: 256 << 20})
	b.Run(fmt.Sprintf("k=%d/tee=%v", k, tee), func(b *testing.B) {
		deltas := make([]string, k)
		for i := range deltas {
			deltas[i] = benchDelta
		}
		body := []byte(strings.Join(upstreamtest.Answer(deltas...), ""))
		relay := testRelay()
		out := &discard{h: http.Header{}}
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		b.ReportAllocs()
		reportCPU(b)
		i := 0
		for b.Loop() {
			var o Options
			var log resume.Log
			if tee {
				i++
				log, _ = store.Create(context.Background(), strconv.Itoa(i), "", nil)
				o.Tee = log
			}
			res := relay.RunWith(context.Background(), out, openBody(bytes.NewReader(body)), o)
			if log != nil {
				log.Finish(resume.End{State: resume.Completed})
			}
			if res.Outcome != Completed || res.Lines != int64(k) {
				b.Fatalf("%v %v, %d lines, want %d", res.Outcome, res.Err, res.Lines, k)
			}
		}
		runtime.ReadMemStats(&after)
		n := float64(b.N) * float64(k)
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/n, "ns/delta")
		b.ReportMetric(float64(after.Mallocs-before.Mallocs)/n, "allocs/delta")
		b.ReportMetric(float64(after.TotalAlloc-before.TotalAlloc)/n, "B/delta")
	})
}

// BenchmarkRelayParked measures the memory a relay holds while it waits
// for its upstream's next event: n relays each relay a few events, then
// park in the read; the goroutine stacks and the heap kept alive are
// reported per relay.
func BenchmarkRelayParked(b *testing.B) {
	const n = 1000
	relay := testRelay()
	for b.Loop() {
		var before, parked runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		writers := make([]*io.PipeWriter, n)
		done := make(chan Result, n)
		for i := range writers {
			pr, pw := io.Pipe()
			writers[i] = pw
			go func() {
				done <- relay.Run(context.Background(), &discard{h: http.Header{}}, openBody(pr))
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
			if res := <-done; res.Outcome != Completed {
				b.Fatal(res.Outcome, res.Err)
			}
		}
	}
}
