package report

import (
	"fmt"
	"math"
	"slices"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"

	"github.com/flightline/flightline/bench/internal/stats"
)

// maxCDFPoints bounds the points of one CDF line: a run records up to
// hundreds of thousands of RTTs, and a line through a thousand evenly
// spaced ranks is indistinguishable from one through all of them.
const maxCDFPoints = 1000

// PlotLatency draws the round-trip-time distributions of the ping scenario
// to path (PNG): one panel per case, in first-seen order, two panels per
// row; in each, one line per peer showing the empirical CDF of its RTTs
// pooled over all successful repetitions (x: RTT in µs on a log scale, so
// both the body and the tail are readable; y: fraction of round trips at
// or below x). The legend gives each peer's p50 and p99.
//
// Non-positive and non-finite RTTs cannot be placed on a log axis and are
// left out. It returns ErrNoData, writing nothing, if no ping run has an
// RTT to draw.
func PlotLatency(recs []Record, path string) error {
	ping := filter(recs, func(r *Record) bool { return r.Scenario == "ping" && r.OK() })
	groups := byCasePeer(ping)
	colors := peerColors(recs)
	peerOrder := firstSeen(recs, func(r Record) string { return r.Peer })

	var panels []*plot.Plot
	for _, c := range firstSeen(ping, func(r *Record) string { return r.Case }) {
		p := plot.New()
		p.Title.Text = "RTT distribution: " + c
		p.X.Label.Text = "round-trip time (µs, log scale)"
		p.Y.Label.Text = "fraction of round trips ≤ x"
		p.X.Scale = plot.LogScale{}
		p.X.Tick.Marker = logTicks{}
		p.Legend.Top = false // bottom right: the CDF's empty corner
		p.Add(plotter.NewGrid())
		lo, hi := math.Inf(1), math.Inf(-1)
		for _, peer := range peerOrder {
			var rtts []float64
			for _, r := range groups[[2]string{c, peer}] {
				for _, v := range r.RTTs {
					if v > 0 && finite(v) {
						rtts = append(rtts, v)
					}
				}
			}
			if len(rtts) == 0 {
				continue
			}
			slices.Sort(rtts)
			l, err := plotter.NewLine(cdf(rtts))
			if err != nil {
				return fmt.Errorf("plot latency: %s, %s: %w", c, peer, err)
			}
			l.Color = colors[peer]
			l.Width = vg.Points(1.5)
			p.Add(l)
			s := stats.Summarize(rtts)
			p.Legend.Add(fmt.Sprintf("%s  p50 %.0f µs, p99 %.0f µs (n=%d)", peer, s.P50, s.P99, s.N), l)
			lo, hi = min(lo, rtts[0]), max(hi, rtts[len(rtts)-1])
		}
		if math.IsInf(lo, 0) {
			continue // this case's runs had no usable RTT
		}
		// A little room either side; also keeps a single-valued
		// distribution from collapsing the log axis to one point.
		p.X.Min, p.X.Max = lo/1.1, hi*1.1
		p.Y.Min, p.Y.Max = 0, 1
		panels = append(panels, p)
	}
	if len(panels) == 0 {
		return ErrNoData
	}

	const cols = 2
	var grid [][]*plot.Plot
	for i := 0; i < len(panels); i += cols {
		j := min(i+cols, len(panels))
		grid = append(grid, panels[i:j:j])
	}
	nc := min(cols, len(panels))
	return savePNG(path, vg.Length(nc)*8*vg.Inch, vg.Length(len(grid))*5*vg.Inch,
		func(c draw.Canvas) { drawGrid(c, grid) })
}

// cdf returns the empirical CDF of ascending, non-empty xs as points
// (xs[i], (i+1)/n), thinned to at most maxCDFPoints evenly spaced ranks
// (always keeping the first and last).
func cdf(xs []float64) plotter.XYs {
	n := len(xs)
	m := min(n, maxCDFPoints)
	pts := make(plotter.XYs, 0, m)
	for k := range m {
		i := k
		if m < n {
			i = int(math.Round(float64(k) * float64(n-1) / float64(m-1)))
		}
		pts = append(pts, plotter.XY{X: xs[i], Y: float64(i+1) / float64(n)})
	}
	return pts
}
