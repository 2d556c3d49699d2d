// Package redisstore keeps resume logs in Redis Streams, shared by every
// instance: one stream key per relayed stream, one entry per line with the
// line's number as its id (0-n), and a last entry marking the end. A hash
// beside it holds the owner and the end; a cancel reaches the instance
// that runs the stream through pub/sub.
package redisstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"streamrelay/internal/redisconn"
	"streamrelay/resume"
)

// Options bound what the store keeps.
type Options struct {
	TTL        time.Duration // how long a log is kept after its stream ended
	RunningTTL time.Duration // how long a running log outlives its last write (an instance that died)
	MaxLines   int64         // lines kept per stream; the oldest go first
	FlushEvery time.Duration // how long lines gather before one pipelined write
}

func (o Options) withDefaults() Options {
	if o.TTL <= 0 {
		o.TTL = 10 * time.Minute
	}
	if o.RunningTTL <= 0 {
		o.RunningTTL = 15 * time.Minute
	}
	if o.MaxLines <= 0 {
		o.MaxLines = 100_000
	}
	if o.FlushEvery <= 0 {
		o.FlushEvery = 5 * time.Millisecond
	}
	return o
}

// Store is a resume.Store on Redis. It is safe for concurrent use.
type Store struct {
	conn *redisconn.Conn
	opts Options
	w    *writer
	sub  *redis.PubSub
	done chan struct{}

	closeOnce sync.Once
	closeErr  error

	mu      sync.Mutex
	cancels map[string]func() // the streams this instance runs
}

var _ resume.Store = (*Store)(nil)

// New returns a Store on conn and starts listening for cancels. Close
// stops it.
func New(conn *redisconn.Conn, opts Options) *Store {
	s := &Store{conn: conn, opts: opts.withDefaults(), done: make(chan struct{}), cancels: map[string]func(){}}
	s.w = newWriter(s)
	s.sub = conn.Subscribe(context.Background(), s.cancelChannel())
	go s.listen()
	return s
}

// Close writes the lines still queued and stops listening for cancels.
// Later calls do nothing.
func (s *Store) Close() error {
	s.closeOnce.Do(func() {
		s.w.close()
		s.closeErr = s.sub.Close()
		<-s.done
	})
	return s.closeErr
}

func (s *Store) streamKey(id string) string { return s.conn.Key("resume", id) }
func (s *Store) metaKey(id string) string   { return s.conn.Key("resume", id, "meta") }
func (s *Store) cancelChannel() string      { return s.conn.Key("cancel") }

// The causes of store failures that Redis did not report.
var (
	errDown   = errors.New("redis is down")
	errClosed = errors.New("the store is closed")
)

// unavailable wraps a Redis failure as resume.ErrUnavailable.
func unavailable(err error) error {
	return fmt.Errorf("%w: %w", resume.ErrUnavailable, err)
}

// Create starts the log of a new, running stream. Its hash is written by
// the writer, at once unless a batch is already on its way: a burst of
// starts shares round trips instead of taking a connection each.
func (s *Store) Create(ctx context.Context, id, owner string, cancel func()) (resume.Log, error) {
	if !s.conn.Up() {
		// Not waiting a dial timeout per new stream while Redis is known
		// to be down: the stream runs without a log.
		s.conn.FailedOpen("resume")
		return nil, unavailable(errDown)
	}
	l := &log{s: s, id: id, key: s.streamKey(id), meta: s.metaKey(id)}
	created := make(chan struct{})
	s.w.add(op{log: l, owner: owner, done: created})
	<-created
	if err := l.failed(); err != nil {
		s.conn.FailedOpen("resume")
		return nil, err
	}
	s.mu.Lock()
	s.cancels[id] = cancel
	s.mu.Unlock()
	return l, nil
}

// Status returns what is known of a stream.
func (s *Store) Status(ctx context.Context, id string) (resume.Status, error) {
	pipe := s.conn.Pipeline()
	meta := pipe.HGetAll(ctx, s.metaKey(id))
	first := pipe.XRangeN(ctx, s.streamKey(id), "-", "+", 1)
	last := pipe.XRevRangeN(ctx, s.streamKey(id), "+", "-", 1)
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return resume.Status{}, unavailable(err)
	}
	m := meta.Val()
	if len(m) == 0 {
		return resume.Status{}, resume.ErrNotFound
	}
	st := resume.Status{Owner: m["owner"], End: resume.End{State: resume.State(m["state"])}}
	st.Lines, _ = strconv.ParseInt(m["lines"], 10, 64)
	if msgs := last.Val(); len(msgs) > 0 && st.State == resume.Running {
		// A running log's count is its last line's number: the writer
		// does not keep the count in the hash on every write.
		if n, ok := lineNumber(msgs[0]); ok {
			st.Lines = n
		}
	}
	st.First = st.Lines + 1
	if msgs := first.Val(); len(msgs) > 0 {
		if n, ok := lineNumber(msgs[0]); ok {
			st.First = n
		}
	}
	if e := m["end"]; e != "" {
		json.Unmarshal([]byte(e), &st.End)
	}
	return st, nil
}

// Follow returns a Cursor on the stream's lines after line from.
func (s *Store) Follow(ctx context.Context, id string, from int64) (resume.Cursor, error) {
	st, err := s.Status(ctx, id)
	switch {
	case err != nil:
		return nil, err
	// While the stream runs, the lines a client saw may not be written
	// yet (appends gather for FlushEvery): the cursor waits for them.
	case from < 0 || from > st.Lines && st.State != resume.Running:
		return nil, resume.ErrBeyond
	case from+1 < st.First:
		return nil, resume.ErrEvicted
	}
	if err := attach.Run(ctx, s.conn, []string{s.metaKey(id)}, 1, 0).Err(); err != nil {
		return nil, unavailable(err)
	}
	return &cursor{s: s, id: id, ctx: ctx, last: from}, nil
}

// Cancel asks the stream's producer, on whichever instance, to stop.
func (s *Store) Cancel(ctx context.Context, id string) error {
	state, err := s.conn.HGet(ctx, s.metaKey(id), "state").Result()
	switch {
	case errors.Is(err, redis.Nil):
		return resume.ErrNotFound
	case err != nil:
		return unavailable(err)
	case state != string(resume.Running):
		return nil
	}
	if err := s.conn.Publish(ctx, s.cancelChannel(), id).Err(); err != nil {
		return unavailable(err)
	}
	return nil
}

// listen calls the cancel function of each stream of this instance that
// a cancel names. go-redis resubscribes after a reconnect.
func (s *Store) listen() {
	defer close(s.done)
	for msg := range s.sub.Channel() {
		s.mu.Lock()
		cancel := s.cancels[msg.Payload]
		delete(s.cancels, msg.Payload)
		s.mu.Unlock()
		if cancel != nil {
			cancel()
		}
	}
}

// forget drops the cancel function of a stream that ended.
func (s *Store) forget(id string) {
	s.mu.Lock()
	delete(s.cancels, id)
	s.mu.Unlock()
}

// lineNumber returns the line number of an entry, or false for the end.
func lineNumber(m redis.XMessage) (int64, bool) {
	if _, isEnd := m.Values["end"]; isEnd {
		return 0, false
	}
	_, seq, _ := cutID(m.ID)
	return seq, true
}

// cutID splits an entry id 0-n into its parts.
func cutID(id string) (ms, seq int64, err error) {
	for i := 0; i < len(id); i++ {
		if id[i] == '-' {
			ms, err = strconv.ParseInt(id[:i], 10, 64)
			if err == nil {
				seq, err = strconv.ParseInt(id[i+1:], 10, 64)
			}
			return ms, seq, err
		}
	}
	return 0, 0, errors.New("bad stream id " + id)
}
