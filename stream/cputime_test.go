package stream

import (
	"runtime"
	"syscall"
	"testing"
	"time"
)

// rusageThread is Linux's RUSAGE_THREAD: the calling thread only.
const rusageThread = 1

// reportCPU adds a cpu-ns/op metric to b: the CPU time of the benchmark's
// own thread per op. On a machine shared with other work, ns/op mostly
// measures the wait for a CPU; this measures the work. Call it before
// b.Loop; the goroutine stays on its thread until the benchmark ends.
func reportCPU(b *testing.B) {
	runtime.LockOSThread()
	start := threadCPU()
	b.Cleanup(func() {
		if b.N > 0 {
			b.ReportMetric(float64(threadCPU()-start)/float64(b.N), "cpu-ns/op")
		}
		runtime.UnlockOSThread()
	})
}

func threadCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(rusageThread, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
