package resume

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"
)

// clock is a settable time for the TTL tests.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func newTestMemory(limits Limits) (*Memory, *clock) {
	m := NewMemory(limits)
	c := &clock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	m.now = c.now
	return m, c
}

var roomy = Limits{TTL: time.Minute, MaxBytes: 1 << 20, Memory: 64 << 20}

// readAll follows id from line from to the end and returns the lines as
// "n:content" and the end.
func readAll(t *testing.T, s Store, id string, from int64) ([]string, End, error) {
	t.Helper()
	cur, err := s.Follow(context.Background(), id, from)
	if err != nil {
		return nil, End{}, err
	}
	defer cur.Close()
	var got []string
	for cur.Next() {
		n, content := cur.Line()
		got = append(got, fmt.Sprintf("%d:%s", n, content))
	}
	return got, cur.End(), cur.Err()
}

func TestFollowReplays(t *testing.T) {
	m, _ := newTestMemory(roomy)
	log, _ := m.Create(context.Background(), "a", "", nil)
	for _, s := range []string{"one", "two\nlines", "three"} {
		log.Append(s)
	}
	done := End{State: Completed, FinishReason: "stop", Usage: &Usage{PromptTokens: 3, CompletionTokens: 5}}
	log.Finish(done)
	tests := []struct {
		name string
		from int64
		want string
		err  error
	}{
		{"from 0", 0, "1:one|2:two\nlines|3:three", nil},
		{"from 1", 1, "2:two\nlines|3:three", nil},
		{"at the end", 3, "", nil},
		{"beyond", 4, "", ErrBeyond},
		{"negative", -1, "", ErrBeyond},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, end, err := readAll(t, m, "a", tt.from)
			if !errors.Is(err, tt.err) {
				t.Fatalf("err = %v, want %v", err, tt.err)
			}
			if err != nil {
				return
			}
			if s := strings.Join(got, "|"); s != tt.want {
				t.Errorf("lines = %q, want %q", s, tt.want)
			}
			if end.State != Completed || end.FinishReason != "stop" || *end.Usage != *done.Usage {
				t.Errorf("end = %+v, want %+v", end, done)
			}
		})
	}
}

func TestFollowLive(t *testing.T) {
	m, _ := newTestMemory(roomy)
	log, _ := m.Create(context.Background(), "a", "", nil)
	log.Append("before")
	const followers = 8
	results := make(chan string, followers)
	for range followers {
		go func() {
			got, end, err := readAll(t, m, "a", 0)
			results <- fmt.Sprintf("%s %s %v", strings.Join(got, "|"), end.State, err)
		}()
	}
	waitAttached(t, log, followers)
	for i := range 100 {
		log.Append(fmt.Sprint(i))
	}
	log.Finish(End{State: Failed, Error: &Error{Code: "upstream_error", Message: "x"}})
	var want strings.Builder
	want.WriteString("1:before")
	for i := range 100 {
		fmt.Fprintf(&want, "|%d:%d", i+2, i)
	}
	want.WriteString(" failed <nil>")
	for range followers {
		if got := <-results; got != want.String() {
			t.Fatalf("follower got %q, want %q", got, want.String())
		}
	}
	if n, _ := log.Attached(); n != 0 {
		t.Errorf("attached after close = %d, want 0", n)
	}
}

// waitAttached waits until n cursors follow log.
func waitAttached(t *testing.T, log Log, n int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		if got, _ := log.Attached(); got == n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("followers never reached %d", n)
		}
		runtime.Gosched()
	}
}

func TestCursorStopsWithContext(t *testing.T) {
	m, _ := newTestMemory(roomy)
	m.Create(context.Background(), "a", "", nil)
	ctx, cancel := context.WithCancelCause(context.Background())
	cur, err := m.Follow(ctx, "a", 0)
	if err != nil {
		t.Fatal(err)
	}
	stopped := errors.New("client left")
	done := make(chan bool)
	go func() { done <- cur.Next() }()
	cancel(stopped)
	if <-done {
		t.Fatal("Next returned a line")
	}
	if !errors.Is(cur.Err(), stopped) {
		t.Errorf("Err = %v, want %v", cur.Err(), stopped)
	}
	cur.Close()
	cur.Close()
}

func TestStatusAndNotFound(t *testing.T) {
	m, clk := newTestMemory(roomy)
	ctx := context.Background()
	if _, err := m.Status(ctx, "nope"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Status(unknown) = %v, want ErrNotFound", err)
	}
	if _, err := m.Follow(ctx, "nope", 0); !errors.Is(err, ErrNotFound) {
		t.Errorf("Follow(unknown) = %v, want ErrNotFound", err)
	}
	if err := m.Cancel(ctx, "nope"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Cancel(unknown) = %v, want ErrNotFound", err)
	}
	log, _ := m.Create(ctx, "a", "token:x", nil)
	log.Append("hi")
	st, _ := m.Status(ctx, "a")
	if st.State != Running || st.Lines != 1 || st.First != 1 || st.Owner != "token:x" {
		t.Errorf("running status = %+v", st)
	}
	log.Finish(End{State: Completed, FinishReason: "length"})
	clk.add(time.Minute - time.Millisecond)
	if st, err := m.Status(ctx, "a"); err != nil || st.State != Completed || st.FinishReason != "length" {
		t.Errorf("status before the TTL = %+v, %v", st, err)
	}
	clk.add(time.Millisecond)
	if _, err := m.Status(ctx, "a"); !errors.Is(err, ErrNotFound) {
		t.Errorf("status after the TTL = %v, want ErrNotFound", err)
	}
	if m.Bytes() != 0 {
		t.Errorf("bytes after expiry = %d, want 0", m.Bytes())
	}
}

func TestCancel(t *testing.T) {
	m, _ := newTestMemory(roomy)
	ctx := context.Background()
	calls := 0
	log, _ := m.Create(ctx, "a", "", func() { calls++ })
	m.Cancel(ctx, "a")
	m.Cancel(ctx, "a")
	if calls != 1 {
		t.Fatalf("cancel called %d times, want 1", calls)
	}
	log.Finish(End{State: Cancelled})
	log2, _ := m.Create(ctx, "b", "", func() { calls++ })
	log2.Finish(End{State: Completed})
	if err := m.Cancel(ctx, "b"); err != nil || calls != 1 {
		t.Errorf("cancel after the end: err %v, calls %d; want nil, 1", err, calls)
	}
}

func TestMaxBytesEvictsOldestLines(t *testing.T) {
	m, _ := newTestMemory(Limits{TTL: time.Minute, MaxBytes: 100, Memory: 1 << 20})
	ctx := context.Background()
	log, _ := m.Create(ctx, "a", "", nil)
	line := strings.Repeat("x", 9)
	for range 1000 {
		log.Append(line)
	}
	st, _ := m.Status(ctx, "a")
	if st.Lines != 1000 || st.First != 990 {
		t.Fatalf("status = lines %d first %d, want 1000, 990", st.Lines, st.First)
	}
	if _, err := m.Follow(ctx, "a", 988); !errors.Is(err, ErrEvicted) {
		t.Errorf("Follow(988) = %v, want ErrEvicted", err)
	}
	log.Finish(End{State: Completed})
	got, _, err := readAll(t, m, "a", 989)
	if err != nil || len(got) != 11 || got[0] != "990:"+line || got[10] != "1000:"+line {
		t.Errorf("Follow(989) = %v, %v", got, err)
	}
}

func TestSlowCursorSeesEviction(t *testing.T) {
	m, _ := newTestMemory(Limits{TTL: time.Minute, MaxBytes: 10, Memory: 1 << 20})
	ctx := context.Background()
	log, _ := m.Create(ctx, "a", "", nil)
	log.Append("12345")
	cur, _ := m.Follow(ctx, "a", 0)
	defer cur.Close()
	if !cur.Next() {
		t.Fatal("no first line")
	}
	for range 5 {
		log.Append("12345")
	}
	if cur.Next() {
		n, _ := cur.Line()
		t.Fatalf("got line %d, want the eviction", n)
	}
	if !errors.Is(cur.Err(), ErrEvicted) {
		t.Errorf("Err = %v, want ErrEvicted", cur.Err())
	}
}

func TestMemoryBoundEvictsOldestFinished(t *testing.T) {
	// 2000 finished streams of 100 KiB each, four times what the store may
	// hold: the accounting and the real heap both stay within the bound.
	const bound = 50 << 20
	m, clk := newTestMemory(Limits{TTL: time.Hour, MaxBytes: 1 << 20, Memory: bound})
	ctx := context.Background()
	var before runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	delta := strings.Repeat("y", 1024)
	for i := range 2000 {
		log, _ := m.Create(ctx, fmt.Sprint(i), "", nil)
		for range 100 {
			log.Append(delta)
		}
		log.Finish(End{State: Completed})
		clk.add(time.Millisecond)
		if m.Bytes() > bound {
			t.Fatalf("after %d streams the store holds %d bytes, over %d", i+1, m.Bytes(), bound)
		}
	}
	var after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&after)
	if grown := int64(after.HeapAlloc) - int64(before.HeapAlloc); grown > bound*11/10 {
		t.Errorf("heap grew by %d bytes, over the bound of %d", grown, bound)
	}
	if _, err := m.Status(ctx, "0"); !errors.Is(err, ErrNotFound) {
		t.Errorf("oldest stream: %v, want evicted", err)
	}
	if _, err := m.Status(ctx, "1999"); err != nil {
		t.Errorf("newest stream: %v, want kept", err)
	}
}

func TestMemoryBoundTrimsRunningWhenNothingFinished(t *testing.T) {
	m, _ := newTestMemory(Limits{TTL: time.Hour, MaxBytes: 1 << 20, Memory: 64 << 10})
	ctx := context.Background()
	log, _ := m.Create(ctx, "a", "", nil)
	for range 2000 {
		log.Append(strings.Repeat("z", 100))
	}
	if m.Bytes() > 64<<10 {
		t.Errorf("store holds %d bytes, over %d", m.Bytes(), 64<<10)
	}
	st, _ := m.Status(ctx, "a")
	if st.Lines != 2000 || st.First <= 1 {
		t.Errorf("status = %+v, want 2000 lines with the oldest evicted", st)
	}
}

func TestAppendAllocations(t *testing.T) {
	m, _ := newTestMemory(roomy)
	log, _ := m.Create(context.Background(), "a", "", nil)
	avg := testing.AllocsPerRun(10000, func() { log.Append("a typical delta") })
	if avg > 0.01 {
		t.Errorf("Append allocates %.3f times per line, want amortized ~0", avg)
	}
}

func TestIDs(t *testing.T) {
	seen := map[string]bool{}
	for range 1000 {
		id := NewID()
		if !ValidID(id) || seen[id] {
			t.Fatalf("id %q invalid or repeated", id)
		}
		seen[id] = true
	}
	for _, bad := range []string{"", "short", strings.Repeat("a", 23), "aaaaaaaaaaaaaaaaaaaa+/", "aaaaaaaaaaaaaaaaaaaaa="} {
		if ValidID(bad) {
			t.Errorf("ValidID(%q) = true", bad)
		}
	}
}

// BenchmarkAppend appends to streams of 500 lines, a long answer.
func BenchmarkAppend(b *testing.B) {
	m := NewMemory(roomy)
	var log Log
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if i%500 == 0 {
			if log != nil {
				log.Finish(End{State: Completed})
			}
			log, _ = m.Create(context.Background(), fmt.Sprint(i), "", nil)
		}
		log.Append("a typical delta")
		i++
	}
}

// BenchmarkAppendAtCap appends to one stream held at its byte cap, where
// every line evicts the oldest.
func BenchmarkAppendAtCap(b *testing.B) {
	m := NewMemory(roomy)
	log, _ := m.Create(context.Background(), "a", "", nil)
	b.ReportAllocs()
	for b.Loop() {
		log.Append("a typical delta")
	}
}
