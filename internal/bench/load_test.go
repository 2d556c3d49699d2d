package main

import (
	"strings"
	"testing"
	"time"
)

func TestReadDeltas(t *testing.T) {
	sseBody := `data: {"choices":[{"index":0,"delta":{"role":"assistant","content":""}}]}` + "\n\n" +
		`data: {"choices":[{"index":0,"delta":{"content":"T100|w1 "}}]}` + "\n\n" +
		`data: {"choices":[{"index":0,"delta":{"content":"T250|w2 "}}]}` + "\n\n" +
		`data: {"choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}` + "\n\n" +
		"data: [DONE]\n\n"
	tests := map[string]struct {
		kind     body
		in       string
		want     []int64
		wantDone bool
		wantErr  bool
	}{
		"lines":              {kind: lines, in: "T100|w1 \nT250|w2 \n", want: []int64{100, 250}},
		"lines, no last \\n": {kind: lines, in: "T100|w1 \nT250|w2 ", want: []int64{100, 250}},
		"sse":                {kind: sse, in: sseBody, want: []int64{100, 250}, wantDone: true},
		"bad stamp":          {kind: lines, in: "Tx|w1 \n", wantErr: true},
		"no sequence":        {kind: lines, in: "T100|1 \n", wantErr: true},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			var got []int64
			done := false
			err := readDeltas(strings.NewReader(tc.in), tc.kind, func(stamp int64, seq int) error {
				if seq != len(got)+1 {
					t.Errorf("delta %d has sequence %d", len(got)+1, seq)
				}
				got = append(got, stamp)
				return nil
			}, func() { done = true })
			if (err != nil) != tc.wantErr {
				t.Fatalf("err = %v, want error: %v", err, tc.wantErr)
			}
			if tc.wantErr {
				return
			}
			if len(got) != len(tc.want) || (len(got) > 0 && (got[0] != tc.want[0] || got[len(got)-1] != tc.want[len(tc.want)-1])) {
				t.Errorf("stamps = %v, want %v", got, tc.want)
			}
			if done != tc.wantDone {
				t.Errorf("done = %v, want %v", done, tc.wantDone)
			}
		})
	}
}

func TestParseLevels(t *testing.T) {
	got, err := parseLevels(defaultLevels)
	if err != nil {
		t.Fatal(err)
	}
	want := []Level{{1, 20 * time.Millisecond, 100}, {100, 20 * time.Millisecond, 100},
		{1000, 20 * time.Millisecond, 100}, {5000, 20 * time.Millisecond, 100}, {8000, time.Second, 10}}
	if len(got) != len(want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("level %d = %v, want %v", i, got[i], want[i])
		}
	}
	for _, bad := range []string{"", "10:20ms", "0:20ms:1", "10:x:1", "10:20ms:0"} {
		if _, err := parseLevels(bad); err == nil {
			t.Errorf("parseLevels(%q) accepted it", bad)
		}
	}
}

func TestQuantile(t *testing.T) {
	s := []int64{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}
	for q, want := range map[float64]int64{0.5: 5, 0.99: 10, 1: 10, 0: 1} {
		if got := quantile(s, q); got != want {
			t.Errorf("quantile(%v) = %d, want %d", q, got, want)
		}
	}
	if got := quantile(nil, 0.5); got != 0 {
		t.Errorf("quantile of nothing = %d, want 0", got)
	}
}

func TestPerStream(t *testing.T) {
	samples := []rssSample{{0, 100}, {500, 600}, {1000, 1100}, {990, 1300}, {10, 1500}, {0, 1500}}
	peak, open, kib := perStream(samples, 100)
	if peak != 1500 || open != 990 || kib != 1200.0/990 {
		t.Errorf("perStream = %d, %d, %v; want 1500, 990, %v", peak, open, kib, 1200.0/990)
	}
	if _, open, kib := perStream(nil, 100); open != 0 || kib != 0 {
		t.Errorf("perStream of nothing = %d open, %v KiB", open, kib)
	}
}
