package main

import (
	"fmt"
	"io"
	"slices"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgsvg"
)

// chartPanel is one panel of the chart: a figure per target against
// concurrency.
type chartPanel struct {
	title, unit string
	value       func(Result) float64
	legendTop   bool // else bottom; the legend sits on the right, away from the lines
}

var chartPanels = []chartPanel{
	{"p99 added latency", "ms", func(r Result) float64 { return r.AddedP99Ms }, false},
	{"CPU per delta", "µs", func(r Result) float64 { return r.CPUPer1kDeltaMs }, true}, // ms per 1000 = µs per one
}

// writeChart draws the medians as SVG: p99 added latency and CPU per delta
// against the number of concurrent streams, one line per target, side by
// side. Both axes are logarithmic, since the levels and the figures span
// orders of magnitude.
func (rep Report) writeChart(w io.Writer) error {
	const width, height = 12 * vg.Inch, 4.5 * vg.Inch
	row := make([]*plot.Plot, len(chartPanels))
	for i, panel := range chartPanels {
		p, err := rep.chartPlot(panel)
		if err != nil {
			return err
		}
		row[i] = p
	}
	canvas := vgsvg.New(width, height)
	tiles := draw.Tiles{Rows: 1, Cols: len(row), PadX: vg.Inch / 3, PadTop: vg.Inch / 6,
		PadBottom: vg.Inch / 8, PadLeft: vg.Inch / 8, PadRight: vg.Inch / 4}
	cells := plot.Align([][]*plot.Plot{row}, tiles, draw.New(canvas))
	for i, p := range row {
		p.Draw(cells[0][i])
	}
	_, err := canvas.WriteTo(w)
	return err
}

// chartPlot draws one panel: a line with points per target, in the
// targets' order of appearance in the medians.
func (rep Report) chartPlot(panel chartPanel) (*plot.Plot, error) {
	p := plot.New()
	d, k := rep.chartShape()
	p.Title.Text = fmt.Sprintf("%s (%s)\nmedians of %d runs, streams of %d deltas %d ms apart", panel.title, panel.unit, rep.Runs, k, d)
	p.X.Label.Text = "concurrent streams"
	p.Y.Label.Text = panel.unit
	p.X.Scale, p.Y.Scale = plot.LogScale{}, plot.LogScale{}
	p.X.Tick.Marker, p.Y.Tick.Marker = plot.LogTicks{Prec: -1}, plot.LogTicks{Prec: -1}
	p.Legend.Top = panel.legendTop
	for i, target := range rep.chartTargets() {
		pts := rep.chartPoints(target, panel.value)
		if len(pts) == 0 {
			continue
		}
		line, points, err := plotter.NewLinePoints(pts)
		if err != nil {
			return nil, fmt.Errorf("chart %s, %s: %w", panel.title, target, err)
		}
		line.Color, points.Color = plotutil.Color(i), plotutil.Color(i)
		points.Shape = plotutil.Shape(i)
		p.Add(line, points)
		p.Legend.Add(target, line, points)
	}
	return p, nil
}

// chartTargets lists the targets in the medians, in order of appearance.
func (rep Report) chartTargets() []string {
	var targets []string
	for _, m := range rep.Medians {
		if !slices.Contains(targets, m.Target) {
			targets = append(targets, m.Target)
		}
	}
	return targets
}

// chartShape returns the delay and delta count of the stream shape that most
// levels share: only those levels are comparable along one line.
func (rep Report) chartShape() (dMs int64, k int) {
	count := map[[2]int64]int{}
	best := 0
	for _, m := range rep.Medians {
		shape := [2]int64{m.DMs, int64(m.K)}
		if count[shape]++; count[shape] > best {
			best, dMs, k = count[shape], m.DMs, m.K
		}
	}
	return dMs, k
}

// chartPoints returns target's figures by concurrency, for the levels of
// the common shape. A log axis can't show 0 or less, so such figures are
// left out.
func (rep Report) chartPoints(target string, value func(Result) float64) plotter.XYs {
	d, k := rep.chartShape()
	var pts plotter.XYs
	for _, m := range rep.Medians {
		if v := value(m); m.Target == target && m.DMs == d && m.K == k && v > 0 && m.C > 0 {
			pts = append(pts, plotter.XY{X: float64(m.C), Y: v})
		}
	}
	slices.SortFunc(pts, func(a, b plotter.XY) int { return int(a.X - b.X) })
	return pts
}
