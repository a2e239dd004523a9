package flightline

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/flightline/flightline/bench/internal/peer"
	"github.com/flightline/flightline/transport"
)

// bulkChunk is the size of each Write: large enough that the per-call cost
// (locking, scheduling the send loop) is negligible against the copy into
// the stream's send buffer.
const bulkChunk = 256 << 10

// serveBulk accepts one connection and reads s.Streams streams from it with
// peer.BulkServer, acknowledging each and then half-closing it.
func (p *flPeer) serveBulk(ctx context.Context, s *peer.Spec, k sideKeys, ready func()) (peer.Result, error) {
	ep, err := p.listen(ctx, s, k, nil)
	if err != nil {
		return peer.Result{}, err
	}
	defer ep.Close()
	ready()
	c, err := p.accept(ctx, ep)
	if err != nil {
		return peer.Result{}, err
	}
	r, err := peer.BulkServer(ctx, s,
		func(ctx context.Context) (io.ReadWriter, error) {
			st, err := c.AcceptStream(ctx)
			if err != nil {
				return nil, peer.CtxErr(ctx, err)
			}
			return ctxStream{ctx, st}, nil
		},
		func(rw io.ReadWriter) error { return rw.(ctxStream).Close() })
	// The client's phase ends when our ack bytes arrive: close only once
	// they are acknowledged, or the client could miss one.
	closeGracefully(ctx, c)
	st := c.Stats()
	r.Info, r.Notes = p.connInfo(st), connNotes(st)
	return r, errors.Join(err, checkStats(st))
}

// runBulk dials one connection, opens s.Streams streams on it and sends them
// with peer.BulkClient, half-closing each after its data.
func (p *flPeer) runBulk(ctx context.Context, s *peer.Spec, k sideKeys) (peer.Result, error) {
	ep, err := p.bind(ctx, s, k)
	if err != nil {
		return peer.Result{}, err
	}
	defer ep.Close()
	c, err := p.dial(ctx, ep, s, k)
	if err != nil {
		return peer.Result{}, err
	}
	rtts := sampleRTT(ctx, c)
	r, err := peer.BulkClient(ctx, s,
		func(ctx context.Context, i int) (io.ReadWriter, error) {
			st, err := c.OpenStreamSync(ctx)
			if err != nil {
				return nil, peer.CtxErr(ctx, err)
			}
			return ctxStream{ctx, st}, nil
		},
		func(_ int, rw io.ReadWriter) error { return rw.(ctxStream).Close() },
		bulkChunk)
	// Snapshot before closing: the counters describe the measured phase
	// (plus the handshake), not the close.
	st := c.Stats()
	meanSRTT, series := rtts()
	r.CC = series
	closeGracefully(ctx, c)
	r.Info, r.Notes = p.connInfo(st), connNotes(st)
	if meanSRTT > 0 && st.MinRTT > 0 {
		r.Notes["mean_srtt_us"] = float64(meanSRTT) / float64(time.Microsecond)
		r.Notes["rtt_inflation"] = float64(meanSRTT) / float64(st.MinRTT)
	}
	return r, errors.Join(err, checkStats(st))
}

// sampleRTT samples c's congestion-control state every 50 ms until the
// returned function is called, which returns the mean smoothed RTT over the
// samples (0 if none) — the RTT the transfer ran at, where the final
// snapshot would only say where it ended — and the samples (at most
// maxCCSamples; later ones are dropped).
func sampleRTT(ctx context.Context, c *transport.Conn) func() (time.Duration, []peer.CCSample) {
	// FLIGHTLINE_BENCH_TRACE=1 prints every sample's congestion state to
	// stderr (forwarded with -v): for looking at one run's phases.
	trace := os.Getenv("FLIGHTLINE_BENCH_TRACE") == "1"
	var (
		sum    time.Duration
		n      int
		series []peer.CCSample
		start  = time.Now()
	)
	stop := peer.Every(ctx, 50*time.Millisecond, func() {
		st := c.Stats()
		sum += st.SmoothedRTT
		n++
		if len(series) < maxCCSamples {
			series = append(series, peer.CCSample{
				T: time.Since(start), Delivered: st.BytesDelivered, PacingRate: st.PacingRate,
				Bandwidth: st.BandwidthEstimate, Cwnd: st.CongestionWindow, Flight: st.FlightSize,
				SRTT: st.SmoothedRTT, State: st.CongestionState,
			})
		}
		if trace {
			fmt.Fprintf(os.Stderr, "trace t=%v cc=%s state=%s bw=%.2fMB/s pacing=%.2fMB/s cwnd=%d flight=%d srtt=%v min=%v delivered=%d lost=%d rtos=%d tlps=%d\n",
				time.Duration(n)*50*time.Millisecond, st.Controller, st.CongestionState, st.BandwidthEstimate/1e6, st.PacingRate/1e6,
				st.CongestionWindow, st.FlightSize, st.SmoothedRTT, st.MinRTT, st.BytesDelivered, st.BytesDeclaredLost, st.RTOs, st.TailLossProbes)
		}
	})
	return func() (time.Duration, []peer.CCSample) {
		stop()
		if n == 0 {
			return 0, series
		}
		return sum / time.Duration(n), series
	}
}

// maxCCSamples bounds the time series a run reports: 10 minutes at 50 ms.
const maxCCSamples = 12000
