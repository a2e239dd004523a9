package report

import (
	"fmt"
	"image/color"
	"slices"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"

	"github.com/flightline/flightline/bench/internal/stats"
)

// goodputScenarios are the scenarios PlotGoodput draws, in this order.
var goodputScenarios = []string{"bulk", "loss", "wan"}

// PlotGoodput draws a grouped bar chart of goodput to path (PNG): one group
// per case of the bulk and loss scenarios (labelled "scenario: case"), one
// bar per peer at the median goodput_MBps of its successful repetitions,
// labelled with that median, with an error bar from the minimum to the
// maximum repetition when there are several. A peer without a value in a
// case (skipped, failed, not measured) has no bar there; the Markdown
// tables say why.
//
// The image is 16 in × 7 in at 96 dpi, wider when there are many bars.
// It returns ErrNoData, writing nothing, if no bulk or loss run has a
// goodput.
func PlotGoodput(recs []Record, path string) error {
	type group struct{ scenario, name string }
	var groups []group
	var peers []string
	data := make(map[group]map[string][]float64)
	for _, sc := range goodputScenarios {
		for _, r := range filter(recs, func(r *Record) bool { return r.Scenario == sc && r.OK() }) {
			v, ok := r.Value(MetricGoodput)
			if !ok || !finite(v) {
				continue
			}
			g := group{sc, r.Case}
			if data[g] == nil {
				data[g] = make(map[string][]float64)
				groups = append(groups, g)
			}
			data[g][r.Peer] = append(data[g][r.Peer], v)
			if !slices.Contains(peers, r.Peer) {
				peers = append(peers, r.Peer)
			}
		}
	}
	if len(groups) == 0 {
		return ErrNoData
	}
	// Peers in the same order as their colours: first appearance overall.
	peers = orderPeers(peers, firstSeen(recs, func(r Record) string { return r.Peer }))
	colors := peerColors(recs)

	// Size: each group gets room for its bars plus one bar's gap.
	const margin = 2 * vg.Inch
	width := max(16*vg.Inch, vg.Length(len(groups)*(len(peers)+1))*vg.Inch/4+margin)
	height := 7 * vg.Inch
	groupWidth := (width - margin) / vg.Length(len(groups))
	barWidth := min(groupWidth/vg.Length(len(peers)+1), vg.Inch/2)

	p := plot.New()
	p.Title.Text = "Goodput (median over repetitions; whiskers: min–max)"
	p.Y.Label.Text = "Goodput (MB/s, 10^6 B/s)"
	p.Legend.Top = true
	p.Legend.Left = true
	grid := plotter.NewGrid() // horizontal only, behind the bars
	grid.Vertical.Color = nil
	p.Add(grid)
	p.Y.Tick.Marker = linearTicks{n: 10}

	labels := make([]string, len(groups))
	for gi, g := range groups {
		// ~5.5 pt per character of the 10 pt tick font.
		labels[gi] = wrap(g.scenario+": "+g.name, max(12, int(groupWidth/5.5)))
	}
	for pi, peer := range peers {
		offset := barWidth * (vg.Length(pi) - vg.Length(len(peers)-1)/2)
		var tops plotter.XYs
		var texts []string
		var legend *plotter.BarChart
		for gi, g := range groups {
			vs := data[g][peer]
			if len(vs) == 0 {
				continue
			}
			med := stats.Median(vs)
			bar, err := plotter.NewBarChart(plotter.Values{med}, barWidth)
			if err != nil {
				return fmt.Errorf("plot goodput: %s, %s: %w", peer, g.name, err)
			}
			bar.XMin = float64(gi)
			bar.Offset = offset
			bar.Color = colors[peer]
			bar.LineStyle.Width = 0
			p.Add(bar)
			if legend == nil {
				legend = bar
			}
			top := med
			if len(vs) > 1 {
				lo, hi := stats.Min(vs), stats.Max(vs)
				p.Add(&whisker{x: float64(gi), offset: offset, lo: lo, hi: hi, width: barWidth / 2})
				top = hi
			}
			tops = append(tops, plotter.XY{X: float64(gi), Y: top})
			texts = append(texts, LookupMetric(MetricGoodput).FormatValue(med))
		}
		if legend != nil {
			p.Legend.Add(peer, legend)
		}
		if len(tops) > 0 {
			l, err := plotter.NewLabels(plotter.XYLabels{XYs: tops, Labels: texts})
			if err != nil {
				return fmt.Errorf("plot goodput: labels for %s: %w", peer, err)
			}
			for i := range l.TextStyle {
				l.TextStyle[i].XAlign = draw.XCenter
				l.TextStyle[i].Font.Size = vg.Points(7)
			}
			l.Offset = vg.Point{X: offset, Y: vg.Points(2)}
			p.Add(l)
		}
	}
	p.NominalX(labels...)
	p.X.Min, p.X.Max = -0.5, float64(len(groups))-0.5
	p.Y.Min = 0
	if !(p.Y.Max > 0) { // all zero: keep a positive axis
		p.Y.Max = 1
	}
	// Headroom for the value labels and the legend (top left, inside the
	// data area), which must not cover the first group's bars.
	p.Y.Max *= 1.1 + 0.05*float64(len(peers))

	return savePNG(path, width, height, func(c draw.Canvas) { p.Draw(c) })
}

// whisker is a vertical min–max line with end caps at a bar's position:
// plotter.YErrorBars cannot follow a bar's Offset, which is in canvas units.
type whisker struct {
	x      float64   // group position (data units)
	offset vg.Length // the bar's offset from x
	lo, hi float64
	width  vg.Length // of the caps
}

func (w *whisker) Plot(c draw.Canvas, p *plot.Plot) {
	trX, trY := p.Transforms(&c)
	x := trX(w.x) + w.offset
	lo, hi := trY(w.lo), trY(w.hi)
	style := draw.LineStyle{Color: color.Black, Width: vg.Points(1)}
	c.StrokeLine2(style, x, lo, x, hi)
	c.StrokeLine2(style, x-w.width/2, lo, x+w.width/2, lo)
	c.StrokeLine2(style, x-w.width/2, hi, x+w.width/2, hi)
}

func (w *whisker) DataRange() (xmin, xmax, ymin, ymax float64) {
	return w.x, w.x, w.lo, w.hi
}
