package main

import (
	"bytes"
	"encoding/xml"
	"io"
	"strings"
	"testing"
)

func TestWriteChart(t *testing.T) {
	rep := Report{Runs: 3}
	for _, c := range []int{1, 100, 1000} {
		rep.Medians = append(rep.Medians,
			Result{Target: targetDirect, C: c, DMs: 20, K: 100, AddedP99Ms: 0, CPUPer1kDeltaMs: 5},
			Result{Target: targetServer, C: c, DMs: 20, K: 100, AddedP99Ms: float64(c) / 10, CPUPer1kDeltaMs: 30},
			Result{Target: targetNginx, C: c, DMs: 20, K: 100, AddedP99Ms: float64(c) / 20, CPUPer1kDeltaMs: 20})
	}
	var buf bytes.Buffer
	if err := rep.writeChart(&buf); err != nil {
		t.Fatal(err)
	}
	svg := buf.String()
	dec := xml.NewDecoder(strings.NewReader(svg))
	for {
		_, err := dec.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("the chart is not well-formed XML: %v", err)
		}
	}
	for _, want := range []string{"<svg", "p99 added latency (ms)", "streams of 100 deltas 20 ms apart", "CPU per delta (µs)", "concurrent streams", targetServer, targetNginx, targetDirect} {
		if !strings.Contains(svg, want) {
			t.Errorf("the chart lacks %q", want)
		}
	}
}

func TestChartPointsKeepsOneShapeAndWhatALogAxisCanShow(t *testing.T) {
	rep := Report{Medians: []Result{
		{Target: targetServer, C: 1000, DMs: 20, K: 100, AddedP99Ms: 4},
		{Target: targetServer, C: 1, DMs: 20, K: 100, AddedP99Ms: 0},
		{Target: targetServer, C: 100, DMs: 20, K: 100, AddedP99Ms: 2},
		{Target: targetServer, C: 8000, DMs: 1000, K: 10, AddedP99Ms: 9},
		{Target: targetNginx, C: 100, DMs: 20, K: 100, AddedP99Ms: 1},
	}}
	pts := rep.chartPoints(targetServer, func(r Result) float64 { return r.AddedP99Ms })
	if len(pts) != 2 || pts[0].X != 100 || pts[0].Y != 2 || pts[1].X != 1000 || pts[1].Y != 4 {
		t.Errorf("points = %v, want (100, 2) and (1000, 4)", pts)
	}
}
