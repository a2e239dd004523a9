package matrix

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/flightline/flightline/bench/internal/peer"
	"github.com/flightline/flightline/bench/internal/report"
)

func TestScaleMetrics(t *testing.T) {
	r := &report.Record{Peer: Subject, Metrics: map[string]float64{}}
	cli := peer.Result{Conns: 1000, HandshakeTime: 2 * time.Second}
	srv := peer.Result{Conns: 1000, Phase: peer.Phase{UserSec: 0.15, SysSec: 0.05}}
	fillMetrics(r, Case{Scenario: ScenarioScale}, cli, srv)
	require.InDelta(t, 500, r.Metrics[report.MetricHandshakes], 1e-9)
	require.InDelta(t, 5000, r.Metrics[report.MetricHandshakesServerCPU], 1e-6, "1000 connections in 0.2 s of server CPU")

	r = &report.Record{Peer: TCP, Metrics: map[string]float64{}}
	fillMetrics(r, Case{Scenario: ScenarioScale}, cli, peer.Result{Conns: 1000})
	_, ok := r.Metrics[report.MetricHandshakesServerCPU]
	require.False(t, ok, "no server phase, no per-CPU rate")
}
