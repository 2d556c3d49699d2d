package stream

// onOwnStack runs fn on a goroutine of its own and waits for it, passing on
// a panic. A goroutine's stack, once grown, stays grown until a garbage
// collection finds it three quarters unused, and a stream's goroutine lives
// as long as the stream, mostly parked in a read about 5.5 KiB deep. The
// few deeper calls of a stream run this way, so that its stack stays at
// 8 KiB instead of 16 or 32: the SDK's request (its JSON encoding and the
// transport, over 15 KiB deep) and net/http's header write (its writeHeader
// frame alone is 2.8 KiB, and it formats the Date header).
func onOwnStack[T any](fn func() T) T {
	type result struct {
		v     T
		panic any
	}
	ch := make(chan result, 1)
	go func() {
		var r result
		defer func() {
			if r.panic = recover(); r.panic != nil {
				ch <- r
			}
		}()
		r.v = fn()
		ch <- r
	}()
	r := <-ch
	if r.panic != nil {
		panic(r.panic)
	}
	return r.v
}
