package abort

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/flightline/flightline/bench/internal/peer"
	"github.com/flightline/flightline/internal/benchhook"
	"github.com/flightline/flightline/testnet"
	"github.com/flightline/flightline/transport"
)

// runMu serialises Runs: the release switch is process-wide.
var runMu sync.Mutex

// Run builds a testnet network, runs the scenario once with flightline's
// abort release on or off, destroys the network and returns the
// measurements. It needs root (network namespaces). The release switch is
// restored to on before Run returns; concurrent Runs wait for each other.
func Run(ctx context.Context, cfg Config, release bool) (Result, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return Result{}, err
	}
	runMu.Lock()
	defer runMu.Unlock()
	ctx, cancel := context.WithTimeout(ctx, cfg.Deadline)
	defer cancel()

	fwd, rev := testnet.Impairment{Rate: cfg.Rate}, testnet.Impairment{Delay: cfg.Delay}
	n, err := testnet.Setup(testnet.Config{AtoB: fwd, BtoA: rev})
	if err != nil {
		return Result{}, fmt.Errorf("abort: %w", err)
	}
	defer n.Close()
	s, err := connect(ctx, n)
	if err != nil {
		return Result{}, err
	}
	defer s.close()

	benchhook.SetAbortRelease(release)
	defer benchhook.SetAbortRelease(true)
	r := &run{cfg: cfg, net: n, fwd: fwd, rev: rev, s: s, pat: peer.NewPattern(cfg.Seed)}
	res, err := r.execute(ctx)
	if err != nil {
		return Result{}, err
	}
	res.Release = release
	return res, nil
}

// run is the state of one execution.
type run struct {
	cfg Config
	net *testnet.Network
	// fwd and rev are the A→B and B→A impairments outside the loss event.
	fwd, rev testnet.Impairment
	s        *session
	pat      *peer.Pattern

	base       time.Time
	recA, recB *recorder
	samples    []sample // written by the sampler until it returns

	flags
}

// The streams' payload indexes in the pattern.
const (
	streamA = 0
	streamB = 1
)

// chunk is the size of each stream write.
const chunk = 64 << 10

// cancelCode is A's application error code.
const cancelCode transport.StreamErrorCode = 0x5a

// execute runs the phases (see the package doc) on a connected session.
func (r *run) execute(ctx context.Context) (Result, error) {
	cc := r.s.cc
	sa, err := cc.OpenStream()
	if err != nil {
		return Result{}, fmt.Errorf("abort: open stream A: %w", err)
	}
	sb, err := cc.OpenStream()
	if err != nil {
		return Result{}, fmt.Errorf("abort: open stream B: %w", err)
	}

	r.base = time.Now()
	r.recA = newRecorder(r.base, r.cfg.span())
	r.recB = newRecorder(r.base, r.cfg.span())
	wctx, stop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer func() { stop(); wg.Wait() }()
	start := func(fn func()) {
		wg.Add(1)
		go func() { defer wg.Done(); fn() }()
	}
	start(func() { r.receive(wctx, sa.ID(), sb.ID()) })
	start(func() { r.sample(wctx) })
	start(func() { r.send(wctx, sa, streamA) })

	// 1. Warm-up: A alone.
	if err := sleep(ctx, r.cfg.Warmup); err != nil {
		return Result{}, err
	}
	// 2. The loss event, and the wait until A's whole window is lost.
	loss := time.Since(r.base)
	lossy := r.fwd
	lossy.Loss = 1
	if err := r.net.SetImpairment(lossy, r.rev); err != nil {
		return Result{}, fmt.Errorf("abort: start the loss: %w", err)
	}
	if err := r.waitStall(ctx); err != nil {
		return Result{}, err
	}
	// 3. The abort: path back first, so A's RESET_STREAM and B's first
	// packets are not lost; then A's cancel; then B.
	if err := r.net.SetImpairment(r.fwd, r.rev); err != nil {
		return Result{}, fmt.Errorf("abort: end the loss: %w", err)
	}
	at := cc.Stats()
	abort := time.Since(r.base)
	r.aborted.Store(true)
	sa.CancelWrite(cancelCode)
	start(func() { r.send(wctx, sb, streamB) })

	// 4. B until it reached full rate and Tail more, or Post.
	smooth := r.cfg.Smooth
	if smooth == 0 {
		smooth = max(10*time.Millisecond, 2*at.MinRTT)
	}
	steady, err := steadyRate(&timeline{a: r.recA.snapshot(), loss: loss}, r.cfg.Steady)
	if err != nil {
		return Result{}, err
	}
	if err := r.waitFullRate(ctx, abort, ticks(smooth), r.cfg.Threshold*steady); err != nil {
		return Result{}, err
	}
	end := time.Since(r.base)
	r.stopping.Store(true)
	info := r.info(smooth)
	stop()
	r.s.close() // ends reads and writes blocked in the transport
	wg.Wait()
	if err := r.err(); err != nil {
		return Result{}, err
	}

	res, err := analyze(&timeline{
		a: r.recA.snapshot(), b: r.recB.snapshot(), bFirst: time.Duration(r.recB.first.Load()),
		samples: r.samples, loss: loss, abort: abort, end: end,
	}, r.cfg, smooth)
	if err != nil {
		return Result{}, err
	}
	res.MinRTT, res.SRTT = at.MinRTT, at.SmoothedRTT
	res.StrandedBytes, res.StrandedCwnd = at.FlightSize, at.CongestionWindow
	info.ABytes, info.BBytes = r.recA.total(), r.recB.total()
	res.Info = info
	return res, nil
}

// waitStall returns once the sender's ACK counter has stood still for
// Config.Quiet, at least one SRTT after the loss event: every packet sent
// before the event is then acknowledged (or lost to the bottleneck and
// resent into the loss), so all of A's flight is lost.
func (r *run) waitStall(ctx context.Context) error {
	cc := r.s.cc
	st := cc.Stats()
	began := time.Now()
	srtt, acked, changed := st.SmoothedRTT, st.BytesAcked, began
	t := time.NewTicker(tick)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return fmt.Errorf("abort: waiting for the stall: %w", ctx.Err())
		case now := <-t.C:
			if a := cc.Stats().BytesAcked; a != acked {
				acked, changed = a, now
			}
			if now.Sub(began) >= srtt && now.Sub(changed) >= r.cfg.Quiet {
				return nil
			}
			if now.Sub(began) > r.cfg.MaxStall {
				return fmt.Errorf("abort: ACKs still arriving %v after the loss event (SRTT %v)", r.cfg.MaxStall, srtt)
			}
		}
	}
}

// waitFullRate returns Config.Tail after B's goodput over w ticks first
// reached want MB/s, or Config.Post after the abort if it never does.
func (r *run) waitFullRate(ctx context.Context, abort time.Duration, w int, want float64) error {
	need := int64(want * 1e6 * (time.Duration(w) * tick).Seconds())
	stopAt := abort + r.cfg.Post
	reached := false
	t := time.NewTicker(tick)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return fmt.Errorf("abort: waiting for B's full rate: %w", ctx.Err())
		case now := <-t.C:
			at := now.Sub(r.base)
			if at >= stopAt {
				return nil
			}
			end := int(at / tick)
			if !reached && r.recB.sum(end-w, end) >= need {
				reached = true
				stopAt = min(stopAt, at+r.cfg.Tail)
			}
		}
	}
}

// info collects the setup and the sender's counters.
func (r *run) info(smooth time.Duration) Info {
	st := r.s.cc.Stats()
	ns := r.net.Stats()
	return Info{
		Datapath: st.Datapath, Controller: st.Controller, Suite: st.Suite,
		Delay: r.cfg.Delay, RateBits: r.cfg.Rate, Smooth: smooth, Threshold: r.cfg.Threshold,
		PacketsLost:          st.PacketsLost,
		PacketsRetransmitted: st.PacketsRetransmitted,
		ResendsSkipped:       st.ResendsSkipped,
		TailLossProbes:       st.TailLossProbes,
		RTOs:                 st.RTOs,
		AbortReleasedBytes:   st.AbortReleasedBytes,
		FlightUnderflows:     st.FlightUnderflows,
		HopLost:              ns.AtoB.Lost,
		RateDropped:          ns.AtoB.RateDropped,
		HopDropped:           ns.AtoB.HopDropped + ns.BtoA.HopDropped,
	}
}

// sleep waits d or until ctx ends.
func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("abort: %w", ctx.Err())
	}
}
