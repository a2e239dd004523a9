package report

import (
	"regexp"
	"slices"
	"sort"
	"strconv"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"

	"github.com/flightline/flightline/bench/internal/stats"
)

// lossInName finds the loss percentage in a case name ("... 5% loss ...").
var lossInName = regexp.MustCompile(`([0-9.]+)% loss`)

// PlotGoodputVsLoss draws goodput against random loss to path (PNG): one
// panel per scenario that varies loss (the line-rate "loss" rows and the
// 200 Mbit/s "wan" rows), one line per peer through the medians, on a log
// goodput axis so that 0.3 and 300 MB/s both read. Failed runs count with
// the goodput they reached (a deadline failure is part of the picture);
// runs without a goodput are left out.
//
// It returns ErrNoData, writing nothing, if no such run has a goodput.
func PlotGoodputVsLoss(recs []Record, path string) error {
	var panels []*plot.Plot
	colors := peerColors(recs)
	for _, sc := range []string{"loss", "wan"} {
		byPeer := map[string]map[float64][]float64{}
		var peers []string
		for _, r := range filter(recs, func(r *Record) bool { return r.Scenario == sc }) {
			m := lossInName.FindStringSubmatch(r.Case)
			v, ok := r.Value(MetricGoodput)
			if m == nil || !ok || !finite(v) || v <= 0 {
				continue
			}
			loss, err := strconv.ParseFloat(m[1], 64)
			if err != nil {
				continue
			}
			if byPeer[r.Peer] == nil {
				byPeer[r.Peer] = map[float64][]float64{}
				peers = append(peers, r.Peer)
			}
			byPeer[r.Peer][loss] = append(byPeer[r.Peer][loss], v)
		}
		if len(peers) == 0 {
			continue
		}
		peers = orderPeers(peers, firstSeen(recs, func(r Record) string { return r.Peer }))
		p := plot.New()
		p.Title.Text = map[string]string{"loss": "Line rate (veth), random loss both ways", "wan": "200 Mbit/s, 20 ms RTT, random loss both ways"}[sc]
		p.X.Label.Text = "loss (%)"
		p.Y.Label.Text = "goodput (MB/s, log scale)"
		p.Y.Scale = plot.LogScale{}
		p.Y.Tick.Marker = plot.LogTicks{Prec: -1}
		p.Legend.Top = true
		p.Add(plotter.NewGrid())
		for _, peer := range peers {
			var losses []float64
			for l := range byPeer[peer] {
				losses = append(losses, l)
			}
			sort.Float64s(losses)
			pts := make(plotter.XYs, 0, len(losses))
			for _, l := range losses {
				pts = append(pts, plotter.XY{X: l, Y: stats.Median(slices.Clone(byPeer[peer][l]))})
			}
			line, points, err := plotter.NewLinePoints(pts)
			if err != nil {
				return err
			}
			line.Color, points.Color = colors[peer], colors[peer]
			line.Width = vg.Points(1.5)
			p.Add(line, points)
			p.Legend.Add(peer, line, points)
		}
		panels = append(panels, p)
	}
	if len(panels) == 0 {
		return ErrNoData
	}
	return savePNG(path, vg.Length(len(panels))*7*vg.Inch, 5*vg.Inch, func(c draw.Canvas) {
		drawGrid(c, [][]*plot.Plot{panels})
	})
}
