package report

import (
	"cmp"
	"fmt"
	"image/color"
	"math"
	"slices"
	"time"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
)

// PlotAbort draws the abort scenario's time series to path (PNG), as two
// stacked panels sharing the time axis (ms relative to the abort, marked by
// a vertical line): on top the sender's bytes in flight (solid) and
// congestion window (dashed) in KiB, below stream B's goodput in MB/s.
//
// There is one curve per variant (Sample.Variant, or the record's Case when
// the samples carry none; prefixed with the peer when several peers ran).
// Each curve comes from one representative repetition, the one with the
// median abort_full_rate_ms among the successful repetitions that have
// samples of that variant (the lower middle one for an even count;
// repetitions without the metric rank last), so the picture shows a typical
// run rather than an average of misaligned ones.
//
// It returns ErrNoData, writing nothing, if no successful abort run has
// samples.
func PlotAbort(recs []Record, path string) error {
	type key struct{ peer, variant string }
	var keys []key
	runs := make(map[key][]*Record)
	for _, r := range filter(recs, func(r *Record) bool { return r.Scenario == "abort" && r.OK() }) {
		for _, v := range firstSeen(r.Series, func(s Sample) string { return s.Variant }) {
			k := key{r.Peer, cmp.Or(v, r.Case)}
			if runs[k] == nil {
				keys = append(keys, k)
			}
			runs[k] = append(runs[k], r)
		}
	}
	if len(keys) == 0 {
		return ErrNoData
	}
	multiPeer := len(firstSeen(keys, func(k key) string { return k.peer })) > 1

	top, bottom := plot.New(), plot.New()
	top.Title.Text = "Abort of stream A: sender state (flight solid, cwnd dashed)"
	top.Y.Label.Text = "KiB"
	bottom.Title.Text = "Stream B goodput"
	bottom.Y.Label.Text = "MB/s"
	for _, p := range []*plot.Plot{top, bottom} {
		p.X.Label.Text = "time since abort (ms)"
		p.Add(plotter.NewGrid())
	}

	drawn := 0
	for i, k := range keys {
		r := representative(runs[k])
		var flight, cwnd, goodput plotter.XYs
		samples := slices.DeleteFunc(slices.Clone(r.Series), func(s Sample) bool {
			return cmp.Or(s.Variant, r.Case) != k.variant || !finite(s.Goodput)
		})
		slices.SortStableFunc(samples, func(a, b Sample) int { return cmp.Compare(a.T, b.T) })
		for _, s := range samples {
			ms := float64(s.T) / float64(time.Millisecond)
			flight = append(flight, plotter.XY{X: ms, Y: float64(s.Flight) / 1024})
			cwnd = append(cwnd, plotter.XY{X: ms, Y: float64(s.Cwnd) / 1024})
			goodput = append(goodput, plotter.XY{X: ms, Y: s.Goodput})
		}
		if len(samples) == 0 {
			continue
		}
		drawn++
		name := k.variant
		if multiPeer {
			name = k.peer + ", " + k.variant
		}
		name += fmt.Sprintf(" (rep %d)", r.Rep)
		c := plotutil.Color(i)
		for _, s := range []struct {
			p      *plot.Plot
			xys    plotter.XYs
			label  string
			dashed bool
		}{
			{top, flight, name + " flight", false},
			{top, cwnd, name + " cwnd", true},
			{bottom, goodput, name, false},
		} {
			l, err := plotter.NewLine(s.xys)
			if err != nil {
				return fmt.Errorf("plot abort: %s: %w", s.label, err)
			}
			l.Color = c
			l.Width = vg.Points(1.5)
			if s.dashed {
				l.Dashes = []vg.Length{vg.Points(6), vg.Points(3)}
			}
			s.p.Add(l)
			s.p.Legend.Add(s.label, l)
		}
	}
	if drawn == 0 {
		return ErrNoData // every sample was unusable
	}

	// One time axis for both panels, and the abort marked on both.
	xmin, xmax := math.Min(top.X.Min, bottom.X.Min), math.Max(top.X.Max, bottom.X.Max)
	for _, p := range []*plot.Plot{top, bottom} {
		p.Add(vline{x: 0})
		p.X.Min, p.X.Max = math.Min(xmin, 0), math.Max(xmax, 0)
		p.Y.Min = math.Min(p.Y.Min, 0)
		p.Y.Max += (p.Y.Max - p.Y.Min) * 0.05 // keep a flat top line off the title
	}
	return savePNG(path, 12*vg.Inch, 9*vg.Inch, func(c draw.Canvas) {
		drawGrid(c, [][]*plot.Plot{{top}, {bottom}})
	})
}

// representative returns the repetition with the median
// abort_full_rate_ms (see PlotAbort); rs is not empty.
func representative(rs []*Record) *Record {
	rank := func(r *Record) float64 {
		if v, ok := r.Value(MetricAbortFullRate); ok && !math.IsNaN(v) {
			return v
		}
		return math.Inf(1)
	}
	s := slices.Clone(rs)
	slices.SortStableFunc(s, func(a, b *Record) int {
		return cmp.Or(cmp.Compare(rank(a), rank(b)), cmp.Compare(a.Seq, b.Seq))
	})
	return s[(len(s)-1)/2]
}

// vline marks x with a vertical line across the whole data area.
type vline struct{ x float64 }

func (v vline) Plot(c draw.Canvas, p *plot.Plot) {
	trX, _ := p.Transforms(&c)
	x := trX(v.x)
	style := draw.LineStyle{Color: color.Gray{Y: 96}, Width: vg.Points(1), Dashes: []vg.Length{vg.Points(2), vg.Points(2)}}
	c.StrokeLine2(style, x, c.Min.Y, x, c.Max.Y)
}

// DataRange claims only x, leaving the y range to the data.
func (v vline) DataRange() (xmin, xmax, ymin, ymax float64) {
	return v.x, v.x, math.Inf(1), math.Inf(-1)
}
