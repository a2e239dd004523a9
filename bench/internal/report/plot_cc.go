package report

import (
	"fmt"
	"image/color"
	"strings"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
)

// ccPreference orders the runs PlotCC looks for: a BBR transfer over the
// WAN path with 1 % loss shows every phase (Startup, Drain, the ProbeBW
// cycle, ProbeRTT) and the loss response; the others are fallbacks.
var ccPreference = []struct{ peer, scenario, caseHas string }{
	{"flightline-bbr", "wan", "1% loss"},
	{"flightline-bbr", "wan", ""},
	{"flightline-bbr", "", ""},
	{"", "", ""},
}

// PlotCC draws one flightline transfer's congestion-control time series to
// path (PNG), three panels over time: delivery rate (acknowledged bytes per
// sample interval), pacing rate and the bandwidth estimate; congestion
// window and bytes in flight; smoothed RTT. The run is the first match of
// ccPreference among the records with a series.
//
// It returns ErrNoData, writing nothing, if no record has a series.
func PlotCC(recs []Record, path string) error {
	var pick *Record
	for _, pref := range ccPreference {
		for i := range recs {
			r := &recs[i]
			if len(r.CC) < 2 || (pref.peer != "" && r.Peer != pref.peer) ||
				(pref.scenario != "" && r.Scenario != pref.scenario) || !strings.Contains(r.Case, pref.caseHas) {
				continue
			}
			pick = r
			break
		}
		if pick != nil {
			break
		}
	}
	if pick == nil {
		return ErrNoData
	}
	var delivery, pacing, bw, cwnd, flight, srtt plotter.XYs
	for i, s := range pick.CC {
		t := s.T.Seconds()
		if i > 0 {
			prev := pick.CC[i-1]
			if dt := (s.T - prev.T).Seconds(); dt > 0 && s.Delivered >= prev.Delivered {
				delivery = append(delivery, plotter.XY{X: t, Y: float64(s.Delivered-prev.Delivered) / dt * 8 / 1e6})
			}
		}
		pacing = append(pacing, plotter.XY{X: t, Y: s.PacingRate * 8 / 1e6})
		if s.Bandwidth > 0 {
			bw = append(bw, plotter.XY{X: t, Y: s.Bandwidth * 8 / 1e6})
		}
		cwnd = append(cwnd, plotter.XY{X: t, Y: float64(s.Cwnd) / 1e3})
		flight = append(flight, plotter.XY{X: t, Y: float64(s.Flight) / 1e3})
		srtt = append(srtt, plotter.XY{X: t, Y: s.SRTT.Seconds() * 1e3})
	}
	panel := func(title, ylabel string, series ...any) (*plot.Plot, error) {
		p := plot.New()
		p.Title.Text = title
		p.X.Label.Text = "time (s)"
		p.Y.Label.Text = ylabel
		p.Y.Min = 0
		p.Legend.Top = true
		p.Add(plotter.NewGrid())
		for i := 0; i+1 < len(series); i += 2 {
			pts := series[i+1].(plotter.XYs)
			if len(pts) == 0 {
				continue
			}
			l, err := plotter.NewLine(pts)
			if err != nil {
				return nil, err
			}
			l.Color = ccColors[i/2]
			l.Width = vg.Points(1.2)
			p.Add(l)
			p.Legend.Add(series[i].(string), l)
		}
		return p, nil
	}
	title := fmt.Sprintf("%s, %s: %s", pick.Peer, pick.Scenario, pick.Case)
	rates, err := panel(title, "Mbit/s", "delivery rate", delivery, "pacing rate", pacing, "bandwidth estimate", bw)
	if err != nil {
		return err
	}
	window, err := panel("", "KB", "cwnd", cwnd, "in flight", flight)
	if err != nil {
		return err
	}
	rtt, err := panel("", "ms", "smoothed RTT", srtt)
	if err != nil {
		return err
	}
	return savePNG(path, 12*vg.Inch, 10*vg.Inch, func(c draw.Canvas) {
		drawGrid(c, [][]*plot.Plot{{rates}, {window}, {rtt}})
	})
}

var ccColors = []color.Color{
	color.RGBA{0x1f, 0x77, 0xb4, 0xff},
	color.RGBA{0xd6, 0x27, 0x28, 0xff},
	color.RGBA{0x2c, 0xa0, 0x2c, 0xff},
}
