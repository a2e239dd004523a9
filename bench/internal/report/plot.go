package report

import (
	"errors"
	"fmt"
	"image/color"
	"io"
	"math"
	"strconv"
	"strings"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
)

// ErrNoData is returned by the Plot functions when the records hold nothing
// they can draw; no file is written then.
var ErrNoData = errors.New("report: no data to plot")

// peerColors gives every peer in recs a colour by order of first
// appearance over all records, so that a report's plots, all drawn from the
// same records, show each peer in the same colour.
func peerColors(recs []Record) map[string]color.Color {
	m := make(map[string]color.Color)
	for i, p := range firstSeen(recs, func(r Record) string { return r.Peer }) {
		m[p] = plotutil.Color(i)
	}
	return m
}

// savePNG draws onto a w×h canvas (white, vgimg's default 96 dpi) and
// writes it to path as PNG, atomically.
//
// gonum/plot reports some bad input (degenerate log axes, malformed tile
// layouts) by panicking; the records come from hours of benchmark runs, so
// such a panic is turned into an error for this one plot instead of taking
// the orchestrator down with the rest of the report.
func savePNG(path string, w, h vg.Length, paint func(draw.Canvas)) (err error) {
	img := vgimg.New(w, h)
	func() {
		defer func() {
			if v := recover(); v != nil {
				err = fmt.Errorf("plot %s: %v", path, v)
			}
		}()
		paint(draw.New(img))
	}()
	if err != nil {
		return err
	}
	return writeFileAtomic(path, func(w io.Writer) error {
		_, err := vgimg.PngCanvas{Canvas: img}.WriteTo(w)
		return err
	})
}

// drawGrid draws plots (row-major, nil for an empty tile) into c with
// aligned data areas.
func drawGrid(c draw.Canvas, plots [][]*plot.Plot) {
	cols := 0
	for _, row := range plots {
		cols = max(cols, len(row))
	}
	full := make([][]*plot.Plot, len(plots)) // plot.Align needs a rectangle
	for i, row := range plots {
		full[i] = make([]*plot.Plot, cols)
		copy(full[i], row)
	}
	plots = full
	t := draw.Tiles{
		Rows: len(plots), Cols: cols,
		PadX: vg.Inch / 4, PadY: vg.Inch / 4,
		PadTop: vg.Inch / 8, PadBottom: vg.Inch / 8, PadLeft: vg.Inch / 8, PadRight: vg.Inch / 4,
	}
	canvases := plot.Align(plots, t, c)
	for i, row := range plots {
		for j, p := range row {
			if p != nil {
				p.Draw(canvases[i][j])
			}
		}
	}
}

// wrap breaks s into lines of at most width runes at spaces (a longer word
// stays whole), for tick labels that must fit under a bar group.
func wrap(s string, width int) string {
	var lines []string
	var cur string
	for _, w := range strings.Fields(s) {
		switch {
		case cur == "":
			cur = w
		case len([]rune(cur))+1+len([]rune(w)) <= width:
			cur += " " + w
		default:
			lines = append(lines, cur)
			cur = w
		}
	}
	if cur != "" {
		lines = append(lines, cur)
	}
	return strings.Join(lines, "\n")
}

// finite reports whether v is neither NaN nor infinite: the only values a
// plot can place.
func finite(v float64) bool { return !math.IsNaN(v) && !math.IsInf(v, 0) }

// logTicks marks a log axis at 1, 2 and 5 times powers of ten (labelled)
// and the other integer multiples (unlabelled), which reads better than
// plot.LogTicks when the data spans less than a decade or two, as RTTs do.
type logTicks struct{}

func (logTicks) Ticks(lo, hi float64) []plot.Tick {
	if !(lo > 0) || !finite(hi) || hi < lo {
		return nil
	}
	var ticks []plot.Tick
	for e := math.Floor(math.Log10(lo)); e <= math.Ceil(math.Log10(hi)); e++ {
		base := math.Pow(10, e)
		for m := 1.0; m <= 9; m++ {
			v := m * base
			if v < lo || v > hi {
				continue
			}
			t := plot.Tick{Value: v}
			if m == 1 || m == 2 || m == 5 {
				t.Label = strconv.FormatFloat(v, 'f', -1, 64)
			}
			ticks = append(ticks, t)
		}
	}
	return ticks
}

// linearTicks labels a linear axis at about n "nice" steps (1, 2 or 5
// times a power of ten), denser than plot.DefaultTicks, so that bar heights
// can be read against the grid.
type linearTicks struct{ n int }

func (t linearTicks) Ticks(lo, hi float64) []plot.Tick {
	if !finite(lo) || !finite(hi) || !(hi > lo) || t.n < 1 {
		return nil
	}
	raw := (hi - lo) / float64(t.n)
	base := math.Pow(10, math.Floor(math.Log10(raw)))
	step := base
	for _, m := range []float64{2, 5, 10} { // the nice step nearest to raw
		if math.Abs(math.Log(m*base/raw)) < math.Abs(math.Log(step/raw)) {
			step = m * base
		}
	}
	decimals := max(0, int(-math.Floor(math.Log10(step))))
	var ticks []plot.Tick
	for k := math.Ceil(lo / step); k*step <= hi && len(ticks) <= 10*t.n; k++ {
		v := k * step
		ticks = append(ticks, plot.Tick{Value: v, Label: strconv.FormatFloat(v, 'f', decimals, 64)})
	}
	return ticks
}
