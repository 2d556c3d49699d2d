package redisstore

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"
	"unsafe"

	"streamrelay/internal/redisconn"
	"streamrelay/internal/redistest"
	"streamrelay/resume"
)

// open returns a Store on srv, as one instance would have it.
func open(t *testing.T, srv *redistest.Server, opts Options) (*Store, *redisconn.Conn) {
	t.Helper()
	conn, err := redisconn.Open(srv.URL(), "test:", slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	s := New(conn, opts)
	t.Cleanup(func() { s.Close(); conn.Close() })
	return s, conn
}

// readAll follows id from line from to the end.
func readAll(t *testing.T, s resume.Store, id string, from int64) ([]string, resume.End, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := s.Follow(ctx, id, from)
	if err != nil {
		return nil, resume.End{}, err
	}
	defer c.Close()
	var lines []string
	for c.Next() {
		n, content := c.Line()
		if want := from + int64(len(lines)) + 1; n != want {
			t.Fatalf("line number %d, want %d", n, want)
		}
		lines = append(lines, string(content))
	}
	return lines, c.End(), c.Err()
}

// TestFollowAcrossInstances writes on A and reads on B: from the start and
// from the middle, while A is still writing and after it finished.
func TestFollowAcrossInstances(t *testing.T) {
	srv := redistest.Start(t)
	a, _ := open(t, srv, Options{})
	b, _ := open(t, srv, Options{})
	id := resume.NewID()
	log, err := a.Create(context.Background(), id, "token:ab", func() {})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"Hello", ", wörld", "<br />two", " 🙂", "end"}
	for _, l := range want[:2] {
		log.Append(l)
	}
	done := make(chan []string)
	go func() {
		got, end, err := readAll(t, b, id, 0)
		if err != nil || end.State != resume.Completed || end.FinishReason != "stop" {
			t.Errorf("live: end %+v, err %v", end, err)
		}
		done <- got
	}()
	waitAttached(t, log, 1)
	for _, l := range want[2:] {
		log.Append(l)
	}
	if err := log.Finish(resume.End{State: resume.Completed, FinishReason: "stop"}); err != nil {
		t.Fatal(err)
	}
	if got := <-done; strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("live on B: %q, want %q", got, want)
	}
	if _, _, err := readAll(t, b, id, 6); !errors.Is(err, resume.ErrBeyond) {
		t.Errorf("from past the end: %v, want ErrBeyond", err)
	}
	got, _, err := readAll(t, b, id, 2)
	if err != nil || strings.Join(got, "\n") != strings.Join(want[2:], "\n") {
		t.Errorf("from line 2 after the end: %q, %v", got, err)
	}
	st, err := b.Status(context.Background(), id)
	if err != nil || st.Owner != "token:ab" || st.Lines != 5 || st.First != 1 || st.State != resume.Completed {
		t.Errorf("status on B = %+v, %v", st, err)
	}
}

func waitAttached(t *testing.T, log resume.Log, n int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		if got, _ := log.Attached(); got == n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("no %d followers after 5 s", n)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestErrors checks the errors Follow and Status give.
func TestErrors(t *testing.T) {
	srv := redistest.Start(t)
	a, _ := open(t, srv, Options{MaxLines: 3})
	id := resume.NewID()
	log, _ := a.Create(context.Background(), id, "", func() {})
	for _, l := range []string{"1", "2", "3", "4", "5"} {
		log.Append(l)
	}
	log.Finish(resume.End{State: resume.Failed, Error: &resume.Error{Code: "upstream_error", Message: "x"}})
	tests := map[string]struct {
		id   string
		from int64
		want error
	}{
		"unknown": {resume.NewID(), 0, resume.ErrNotFound},
		"beyond":  {id, 6, resume.ErrBeyond},
		"evicted": {id, 0, resume.ErrEvicted},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			if _, _, err := readAll(t, a, tt.id, tt.from); !errors.Is(err, tt.want) {
				t.Errorf("err = %v, want %v", err, tt.want)
			}
		})
	}
	got, end, err := readAll(t, a, id, 2)
	if strings.Join(got, ",") != "3,4,5" || end.State != resume.Failed || end.Error == nil || end.Error.Code != "upstream_error" || err != nil {
		t.Errorf("the kept lines: %q, %+v, %v", got, end, err)
	}
}

// TestCancelAcrossInstances cancels on B a stream that runs on A.
func TestCancelAcrossInstances(t *testing.T) {
	srv := redistest.Start(t)
	a, _ := open(t, srv, Options{})
	b, _ := open(t, srv, Options{})
	id := resume.NewID()
	cancelled := make(chan struct{})
	log, err := a.Create(context.Background(), id, "", func() { close(cancelled) })
	if err != nil {
		t.Fatal(err)
	}
	waitSubscribed(t, a)
	start := time.Now()
	if err := b.Cancel(context.Background(), id); err != nil {
		t.Fatal(err)
	}
	select {
	case <-cancelled:
	case <-time.After(time.Second):
		t.Fatal("A's stream not cancelled within 1 s of the cancel on B")
	}
	t.Logf("cancelled %v after the cancel", time.Since(start))
	log.Finish(resume.End{State: resume.Cancelled})
	if err := b.Cancel(context.Background(), id); err != nil {
		t.Errorf("cancel after the end: %v", err)
	}
	if err := b.Cancel(context.Background(), resume.NewID()); !errors.Is(err, resume.ErrNotFound) {
		t.Errorf("cancel of an unknown id: %v", err)
	}
}

// waitSubscribed waits until s's cancel subscription is in place.
func waitSubscribed(t *testing.T, s *Store) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		n, err := s.conn.PubSubNumSub(context.Background(), s.cancelChannel()).Result()
		if err == nil && n[s.cancelChannel()] > 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("not subscribed after 5 s: %v", err)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestKeysExpire checks that every key has a TTL, running and ended.
func TestKeysExpire(t *testing.T) {
	srv := redistest.Start(t)
	a, conn := open(t, srv, Options{TTL: time.Minute, RunningTTL: time.Hour})
	id := resume.NewID()
	log, _ := a.Create(context.Background(), id, "", func() {})
	log.Append("x")
	c, err := a.Follow(context.Background(), id, 0)
	if err != nil {
		t.Fatal(err)
	}
	c.Next()
	check := func(max time.Duration) {
		keys := conn.Keys(context.Background(), "*").Val()
		if len(keys) != 2 {
			t.Errorf("keys %q, want the stream and its hash", keys)
		}
		for _, k := range keys {
			if ttl := conn.PTTL(context.Background(), k).Val(); ttl <= 0 || ttl > max || !strings.HasPrefix(k, "test:") {
				t.Errorf("key %s: TTL %v, want one up to %v", k, ttl, max)
			}
		}
	}
	check(time.Hour)
	log.Finish(resume.End{State: resume.Completed})
	c.Close()
	check(time.Minute)
}

// TestRedisDown checks the store answers ErrUnavailable while Redis is
// down, and works again after it restarted.
func TestRedisDown(t *testing.T) {
	srv := redistest.Start(t)
	a, conn := open(t, srv, Options{})
	srv.Kill(t)
	if _, err := a.Create(context.Background(), resume.NewID(), "", func() {}); !errors.Is(err, resume.ErrUnavailable) {
		t.Errorf("Create while down: %v", err)
	}
	if _, err := a.Status(context.Background(), resume.NewID()); !errors.Is(err, resume.ErrUnavailable) {
		t.Errorf("Status while down: %v", err)
	}
	srv.Restart(t)
	redistest.WaitUp(t, conn, 5*time.Second)
	id := resume.NewID()
	log, err := a.Create(context.Background(), id, "", func() {})
	if err != nil {
		t.Fatalf("Create after the restart: %v", err)
	}
	log.Append("back")
	log.Finish(resume.End{State: resume.Completed})
	if got, _, err := readAll(t, a, id, 0); len(got) != 1 || got[0] != "back" || err != nil {
		t.Errorf("after the restart: %q, %v", got, err)
	}
}

// TestFinishAfterClose checks that a stream that outlives the Store's
// Close (one generating in the background at shutdown) finishes at once
// with an error instead of waiting forever for the writer.
func TestFinishAfterClose(t *testing.T) {
	srv := redistest.Start(t)
	s, _ := open(t, srv, Options{})
	log, err := s.Create(context.Background(), resume.NewID(), "", func() {})
	if err != nil {
		t.Fatal(err)
	}
	log.Append("before")
	s.Close()
	log.Append("after")
	done := make(chan error)
	go func() { done <- log.Finish(resume.End{State: resume.Completed}) }()
	select {
	case err := <-done:
		if !errors.Is(err, resume.ErrUnavailable) {
			t.Errorf("Finish after Close: %v, want ErrUnavailable", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Finish after Close still waiting after 5 s")
	}
}

// TestStartAndEndGoOutAtOnce gives the writer a flush interval of an hour:
// a stream's start and end, which requests wait for, are still written at
// once, and the end carries the lines queued before it, in order.
func TestStartAndEndGoOutAtOnce(t *testing.T) {
	srv := redistest.Start(t)
	a, _ := open(t, srv, Options{FlushEvery: time.Hour})
	b, _ := open(t, srv, Options{})
	id := resume.NewID()
	done := make(chan error, 1)
	go func() {
		log, err := a.Create(context.Background(), id, "", func() {})
		if err == nil {
			log.Append("one")
			log.Append("two")
			err = log.Finish(resume.End{State: resume.Completed, FinishReason: "stop"})
		}
		done <- err
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Create and Finish waited for the flush interval")
	}
	got, end, err := readAll(t, b, id, 0)
	if strings.Join(got, "|") != "one|two" || end.State != resume.Completed || err != nil {
		t.Errorf("read on B: %q, %+v, %v; want one|two, completed", got, end, err)
	}
}

// TestAppendKeepsACopy: a line waits for its batch past Append, and the
// relay's content may share memory with an upstream event's buffer, so
// the log must send what Append was given, whatever happens to the
// memory after.
func TestAppendKeepsACopy(t *testing.T) {
	srv := redistest.Start(t)
	a, _ := open(t, srv, Options{FlushEvery: time.Hour}) // lines wait for Finish
	id := resume.NewID()
	log, err := a.Create(context.Background(), id, "", func() {})
	if err != nil {
		t.Fatal(err)
	}
	buf := []byte("first")
	log.Append(unsafe.String(&buf[0], len(buf)))
	copy(buf, "XXXXX")
	if err := log.Finish(resume.End{State: resume.Completed}); err != nil {
		t.Fatal(err)
	}
	if got, _, err := readAll(t, a, id, 0); err != nil || len(got) != 1 || got[0] != "first" {
		t.Fatalf("got %q, %v; want [first]", got, err)
	}
}
