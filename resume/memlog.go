package resume

import (
	"sync"
	"time"
)

// memLog is one stream's log in a Memory store.
//
// The lines are kept back to back in data; ends[i] is where line i ends
// (line head is the oldest kept, starting at base). Nothing written to data
// or ends is ever changed: appends go past the end, and dropping old lines
// or trimming copies into new arrays. A cursor can therefore read a
// snapshot of the two slices without holding the lock.
type memLog struct {
	store      *Memory
	id, owner  string
	cancel     func()
	cancelOnce sync.Once
	next       *memLog // in the store's list of finished logs

	mu        sync.Mutex
	data      []byte
	ends      []int
	head      int   // index in ends of the oldest kept line
	base      int   // where in data that line starts
	first     int64 // number of the oldest kept line
	lines     int64 // lines appended
	acc       int64 // bytes accounted to the store
	end       End
	endedAt   time.Time
	wake      chan struct{} // closed on the next append or end, when a cursor waits
	followers int
	lastLeft  time.Time
}

// The first arrays of a log: room for a short answer, so that a typical
// stream grows them a few times at most.
const (
	firstData  = 1 << 10
	firstLines = 64
)

// size returns the bytes l holds: what the accounting counts.
func (l *memLog) size() int64 {
	return logOverhead + int64(len(l.id)+len(l.owner)+cap(l.data)+8*cap(l.ends))
}

// Append adds the next line. It allocates only when the arrays grow.
func (l *memLog) Append(content string) {
	l.mu.Lock()
	if l.data == nil {
		l.data = make([]byte, 0, max(firstData, len(content)))
		l.ends = make([]int, 0, firstLines)
	}
	l.data = append(l.data, content...)
	l.ends = append(l.ends, len(l.data))
	l.lines++
	if max := l.store.limits.MaxBytes; max > 0 {
		for l.kept() > max && l.head < len(l.ends)-1 {
			l.dropOldest()
		}
	}
	l.wakeUp()
	grown := l.account()
	l.mu.Unlock()
	if grown && !l.store.shrink() {
		l.trimToFit()
	}
}

// kept returns the content bytes of the lines kept.
func (l *memLog) kept() int64 { return int64(len(l.data) - l.base) }

// dropOldest forgets the oldest kept line, and compacts the arrays once
// the forgotten part is the larger. The caller holds l.mu.
func (l *memLog) dropOldest() {
	l.base = l.ends[l.head]
	l.head++
	l.first++
	if l.head > len(l.ends)/2 {
		l.compact(cap(l.data)-l.base, cap(l.ends)-l.head)
	}
}

// compact copies the kept lines into new arrays of the given capacities.
func (l *memLog) compact(dataCap, endsCap int) {
	data := make([]byte, len(l.data)-l.base, max(dataCap, len(l.data)-l.base))
	copy(data, l.data[l.base:])
	ends := make([]int, len(l.ends)-l.head, max(endsCap, len(l.ends)-l.head))
	for i, e := range l.ends[l.head:] {
		ends[i] = e - l.base
	}
	l.data, l.ends, l.head, l.base = data, ends, 0, 0
}

// account brings the store's total up to date with l's size and reports
// whether l grew. The caller holds l.mu.
func (l *memLog) account() bool {
	size := l.size()
	if size == l.acc {
		return false
	}
	l.store.total.Add(size - l.acc)
	grown := size > l.acc
	l.acc = size
	return grown
}

// trimToFit drops l's own oldest lines while the store is over its memory
// bound and no finished log is left to evict.
func (l *memLog) trimToFit() {
	l.mu.Lock()
	defer l.mu.Unlock()
	limit := l.store.limits.Memory
	for l.store.total.Load() > limit && l.head < len(l.ends)-1 {
		l.dropOldest()
		l.account()
	}
}

// wakeUp wakes the cursors waiting for more. The caller holds l.mu.
func (l *memLog) wakeUp() {
	if l.wake != nil {
		close(l.wake)
		l.wake = nil
	}
}

// Finish marks how the stream ended, trims the arrays to their contents and
// starts the time to live.
func (l *memLog) Finish(end End) error {
	l.mu.Lock()
	if l.end.State != Running {
		l.mu.Unlock()
		return nil
	}
	l.end = end
	l.endedAt = l.store.now()
	l.compact(0, 0)
	l.wakeUp()
	l.account()
	l.mu.Unlock()
	l.store.finished(l)
	return nil
}

// Attached reports the cursors following l now, and when the last left.
func (l *memLog) Attached() (int, time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.followers, l.lastLeft
}

// detach notes that a cursor went away.
func (l *memLog) detach() {
	l.mu.Lock()
	l.followers--
	l.lastLeft = l.store.now()
	l.mu.Unlock()
}
