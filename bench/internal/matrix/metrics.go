package matrix

import (
	"fmt"
	"math"
	"slices"

	"github.com/flightline/flightline/bench/internal/peer"
	"github.com/flightline/flightline/bench/internal/report"
	"github.com/flightline/flightline/bench/internal/stats"
)

const gib = 1 << 30

// fillMetrics turns the two sides' results into r's metrics.
//
// Bulk goodput is the bytes the server verified over the client's phase
// (first write to the last acknowledgement), so handshakes are excluded and
// every byte counted arrived intact. A blast has no acknowledgement: its
// goodput is what arrived over the server's own first-to-last window.
//
// CPU per GiB: process = both sides' CPU time in their phases; machine = all
// CPUs' busy time during the phase that spans the transfer (softirq work and
// anything else running included), both divided by GiB delivered.
func fillMetrics(r *report.Record, c Case, cli, srv peer.Result) {
	m := r.Metrics
	info := []string{}
	for _, s := range []peer.Result{cli, srv} {
		if s.Info != "" && !slices.Contains(info, s.Info) {
			info = append(info, s.Info)
		}
	}
	if len(info) > 0 {
		r.Info = fmt.Sprint(info)
	}
	switch c.Scenario {
	case ScenarioBulk, ScenarioLoss, ScenarioWAN:
		span := cli.Phase
		if isBlast(r.Peer) {
			span = srv.Phase
		}
		secs := span.Seconds()
		if srv.Bytes <= 0 || secs <= 0 {
			return
		}
		m[report.MetricGoodput] = float64(srv.Bytes) / secs / 1e6
		gb := float64(srv.Bytes) / gib
		m[report.MetricCPUProcess] = (cli.Phase.ProcessSec() + srv.Phase.ProcessSec()) / gb
		if span.MachineSec > 0 {
			m[report.MetricCPUMachine] = span.MachineBusySec / gb
		}
		notes := cli.Notes
		if isBlast(r.Peer) {
			notes = srv.Notes
		}
		if v, ok := notes["retransmit_pct"]; ok {
			m[report.MetricRetransmit] = v
		} else if rt, ok := notes["retransmits"]; ok && notes["segs_out"] > 0 {
			m[report.MetricRetransmit] = 100 * rt / notes["segs_out"]
		}
		if v, ok := notes["lost_pct"]; ok {
			m[report.MetricLossSeen] = v
		}
		if v, ok := notes["rtt_inflation"]; ok {
			m[report.MetricRTTInflation] = v
		}
		for _, c := range cli.CC {
			r.CC = append(r.CC, report.CCSample(c))
		}
	case ScenarioPing:
		if len(cli.RTTs) == 0 {
			return
		}
		us := make([]float64, len(cli.RTTs))
		for i, ns := range cli.RTTs {
			us[i] = float64(ns) / 1e3
		}
		r.RTTs = us
		m[report.MetricRTTP50] = stats.Percentile(us, 50)
		m[report.MetricRTTP99] = stats.Percentile(us, 99)
	case ScenarioScale:
		if cli.Conns <= 0 || cli.HandshakeTime <= 0 {
			return
		}
		m[report.MetricHandshakes] = float64(cli.Conns) / cli.HandshakeTime.Seconds()
		mem := float64(srv.RSSAfter-srv.RSSBefore) + float64(cli.RSSAfter-cli.RSSBefore)
		m[report.MetricMemPerConn] = math.Max(mem, 0) / float64(cli.Conns) / 1024
	}
}
