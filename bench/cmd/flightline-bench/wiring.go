package main

import (
	"context"
	"fmt"

	"github.com/flightline/flightline/bench/internal/abort"
	"github.com/flightline/flightline/bench/internal/matrix"
	"github.com/flightline/flightline/bench/internal/peers/flightline"
	"github.com/flightline/flightline/bench/internal/report"
)

// keysFor makes fresh static keys for flightline runs; other peers need none
// (quic-go derives its certificate itself, kcp-crypt uses a fixed key).
func keysFor(p string) (map[string]string, error) {
	if matrix.Flightline(p) {
		return flightline.NewKeys()
	}
	return nil, nil
}

// runAbort runs one rep of the stream-abort scenario in this process, with
// flightline's abort release on (matrix.Subject) or disabled by the
// bench-only switch (matrix.SubjectNoRelease).
func runAbort(ctx context.Context, p string, rep int) (report.Record, error) {
	res, err := abort.Run(ctx, abort.Config{}, p != matrix.SubjectNoRelease)
	r := report.Record{Metrics: map[string]float64{}, Info: fmt.Sprintf(
		"%s %s, %v added RTT on the ACK path, %d Mbit/s bottleneck; stranded %d B of cwnd %d B; A %.2f MB/s steady; B lost %d, retransmitted %d, released by abort %d B",
		res.Info.Datapath, res.Info.Controller, res.Info.Delay, res.Info.RateBits/1e6, res.StrandedBytes, res.StrandedCwnd,
		res.SteadyMBps, res.Info.PacketsLost, res.Info.PacketsRetransmitted, res.Info.AbortReleasedBytes)}
	variant := "release on"
	if p == matrix.SubjectNoRelease {
		variant = "release off"
	}
	for _, pt := range res.Series {
		r.Series = append(r.Series, report.Sample{T: pt.T, Flight: pt.Flight, Cwnd: pt.Cwnd, Goodput: pt.GoodputMBps, Variant: variant})
	}
	if err != nil {
		return r, err
	}
	if res.FirstByte >= 0 {
		r.Metrics[report.MetricAbortFirstByte] = ms(res.FirstByte.Seconds())
	}
	if res.FullRate < 0 {
		return r, fmt.Errorf("stream B never reached full rate (%.2f MB/s)", res.SteadyMBps)
	}
	r.Metrics[report.MetricAbortFullRate] = ms(res.FullRate.Seconds())
	if res.MinRTT > 0 {
		r.Metrics[report.MetricAbortFullRateRTTs] = res.FullRate.Seconds() / res.MinRTT.Seconds()
	}
	return r, nil
}

func ms(s float64) float64 { return s * 1e3 }
