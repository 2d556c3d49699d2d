package limit

import (
	"errors"
	"strconv"
	"testing"
	"time"
)

var t0 = time.Date(2026, 11, 21, 12, 0, 0, 0, time.UTC)

func rejection(t *testing.T, err error) *Rejection {
	t.Helper()
	var r *Rejection
	if !errors.As(err, &r) {
		t.Fatalf("err = %v, want a *Rejection", err)
	}
	return r
}

func TestRate(t *testing.T) {
	l := New(Config{PerMinute: 60, Burst: 2})
	for i := range 2 {
		release, err := l.Admit("a", t0)
		if err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
		release()
	}
	_, err := l.Admit("a", t0)
	if r := rejection(t, err); r.Limit != LimitRate || r.RetryAfter != time.Second || r.RetryAfterSeconds() != 1 {
		t.Errorf("rejection = %+v", r)
	}
	if _, err := l.Admit("b", t0); err != nil {
		t.Errorf("another caller was limited too: %v", err)
	}
	if _, err := l.Admit("a", t0.Add(time.Second)); err != nil {
		t.Errorf("after a second: %v", err)
	}
}

func TestPerCallerStreams(t *testing.T) {
	l := New(Config{PerMinute: Off, PerCaller: 2})
	r1, err1 := l.Admit("a", t0)
	_, err2 := l.Admit("a", t0)
	if err1 != nil || err2 != nil {
		t.Fatal(err1, err2)
	}
	_, err := l.Admit("a", t0)
	if r := rejection(t, err); r.Limit != LimitPerCaller {
		t.Errorf("third stream: %+v", r)
	}
	if _, err := l.Admit("b", t0); err != nil {
		t.Errorf("another caller: %v", err)
	}
	r1()
	r1() // a second release changes nothing
	if _, err := l.Admit("a", t0); err != nil {
		t.Errorf("after one ended: %v", err)
	}
	if _, err := l.Admit("a", t0); err == nil {
		t.Error("a double release freed two slots")
	}
}

func TestGlobalStreams(t *testing.T) {
	l := New(Config{PerMinute: Off, Global: 3})
	var releases []func()
	for i := range 3 {
		r, err := l.Admit(strconv.Itoa(i), t0)
		if err != nil {
			t.Fatal(err)
		}
		releases = append(releases, r)
	}
	_, err := l.Admit("x", t0)
	if r := rejection(t, err); r.Limit != LimitGlobal {
		t.Errorf("rejection = %+v", r)
	}
	releases[0]()
	if _, err := l.Admit("x", t0); err != nil {
		t.Errorf("after one ended: %v", err)
	}
	if l.Open() != 3 {
		t.Errorf("Open = %d, want 3", l.Open())
	}
}

func TestOff(t *testing.T) {
	l := New(Config{PerMinute: Off, PerCaller: Off, Global: Off})
	for i := range 10_000 {
		if _, err := l.Admit("a", t0); err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
	}
}

// TestMemoryBounded checks that callers who left are forgotten.
func TestMemoryBounded(t *testing.T) {
	l := New(Config{PerMinute: 60, Burst: 5, PerCaller: 2})
	var held func()
	for i := range 10_000 {
		release, err := l.Admit("ip-"+strconv.Itoa(i), t0)
		if err != nil {
			t.Fatal(err)
		}
		if i == 0 {
			held = release // one caller still streaming
			continue
		}
		release()
	}
	if n := l.Callers(); n != 10_000 {
		t.Fatalf("Callers = %d before any sweep", n)
	}
	// A minute later every bucket has refilled: one Admit sweeps them.
	if _, err := l.Admit("late", t0.Add(sweepEvery)); err != nil {
		t.Fatal(err)
	}
	if n := l.Callers(); n != 2 {
		t.Errorf("Callers = %d after the sweep, want 2 (the one streaming and the new one)", n)
	}
	held()
}

// TestZeroIsDefault checks that a zero Config gets the defaults: a burst
// of 20 requests, and 5 streams open per caller.
func TestZeroIsDefault(t *testing.T) {
	l := New(Config{})
	for i := range 20 {
		release, err := l.Admit("burst", t0)
		if err != nil {
			t.Fatalf("request %d of the burst: %v", i, err)
		}
		release()
	}
	if _, err := l.Admit("burst", t0); err == nil {
		t.Error("request 21 of a burst was admitted; the default burst is 20")
	}
	for i := range 5 {
		if _, err := l.Admit("open", t0); err != nil {
			t.Fatalf("stream %d: %v", i, err)
		}
	}
	if _, err := l.Admit("open", t0); err == nil {
		t.Error("a sixth stream was admitted; the default is 5 per caller")
	}
}
