package resume

import (
	"context"
	"sync"
	"sync/atomic"
	"time"
)

// Limits bound the logs a Memory store keeps.
type Limits struct {
	TTL      time.Duration // how long a log is kept after its stream ended
	MaxBytes int64         // content bytes kept per stream; oldest lines go first
	Memory   int64         // bytes kept in all; oldest finished streams go first
}

// logOverhead is what one log costs beyond its lines, for the accounting:
// the struct, its map entry and list links, roughly.
const logOverhead = 512

// Memory is a Store that keeps the logs in this process.
type Memory struct {
	limits Limits
	now    func() time.Time
	total  atomic.Int64 // bytes accounted to all logs

	mu      sync.Mutex
	streams map[string]*memLog
	oldest  *memLog // the finished logs, oldest end first, linked by next
	newest  *memLog
}

// NewMemory returns an empty in-process Store.
func NewMemory(limits Limits) *Memory {
	return &Memory{limits: limits, now: time.Now, streams: make(map[string]*memLog)}
}

// Bytes returns the bytes the store accounts to its logs now.
func (m *Memory) Bytes() int64 { return m.total.Load() }

// Create starts the log of a new, running stream.
func (m *Memory) Create(_ context.Context, id, owner string, cancel func()) (Log, error) {
	l := &memLog{store: m, id: id, owner: owner, cancel: cancel, first: 1, end: End{State: Running}}
	l.acc = l.size()
	m.total.Add(l.acc)
	m.mu.Lock()
	m.expire()
	m.streams[id] = l
	m.mu.Unlock()
	m.shrink()
	return l, nil
}

// Status returns what is known of a stream.
func (m *Memory) Status(_ context.Context, id string) (Status, error) {
	l := m.lookup(id)
	if l == nil {
		return Status{}, ErrNotFound
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	return Status{Owner: l.owner, Lines: l.lines, First: l.first, End: l.end}, nil
}

// Follow returns a Cursor on the stream's lines after line from.
func (m *Memory) Follow(ctx context.Context, id string, from int64) (Cursor, error) {
	l := m.lookup(id)
	if l == nil {
		return nil, ErrNotFound
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	switch {
	case from < 0 || from > l.lines:
		return nil, ErrBeyond
	case from+1 < l.first:
		return nil, ErrEvicted
	}
	l.followers++
	return &memCursor{log: l, ctx: ctx, next: from + 1}, nil
}

// Cancel calls the cancel function of a running stream.
func (m *Memory) Cancel(_ context.Context, id string) error {
	l := m.lookup(id)
	if l == nil {
		return ErrNotFound
	}
	l.mu.Lock()
	running := l.end.State == Running
	l.mu.Unlock()
	if running && l.cancel != nil {
		l.cancelOnce.Do(l.cancel)
	}
	return nil
}

// lookup returns the live log of id, or nil.
func (m *Memory) lookup(id string) *memLog {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.expire()
	return m.streams[id]
}

// expire drops the finished logs whose time to live has passed. Logs end in
// the order of the list and share one TTL, so they expire in that order too.
// The caller holds m.mu.
func (m *Memory) expire() {
	now := m.now()
	for l := m.oldest; l != nil && now.Sub(l.endedAt) >= m.limits.TTL; l = m.oldest {
		m.drop(l)
	}
}

// drop forgets a finished log, the oldest. The caller holds m.mu.
func (m *Memory) drop(l *memLog) {
	m.oldest = l.next
	if m.oldest == nil {
		m.newest = nil
	}
	l.next = nil
	delete(m.streams, l.id)
	l.mu.Lock()
	l.first = l.lines + 1 // a cursor that still needs lines sees them evicted
	l.data, l.ends, l.head, l.base = nil, nil, 0, 0
	freed := l.acc
	l.acc = 0
	l.mu.Unlock()
	m.total.Add(-freed)
}

// finished puts l at the end of the list of finished logs.
func (m *Memory) finished(l *memLog) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.streams[l.id] != l {
		return
	}
	if m.newest == nil {
		m.oldest = l
	} else {
		m.newest.next = l
	}
	m.newest = l
	m.expire()
}

// shrink evicts the oldest finished logs while the store is over its
// memory bound, and reports whether that was enough.
func (m *Memory) shrink() bool {
	if m.limits.Memory <= 0 || m.total.Load() <= m.limits.Memory {
		return true
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	for m.oldest != nil && m.total.Load() > m.limits.Memory {
		m.drop(m.oldest)
	}
	return m.total.Load() <= m.limits.Memory
}
