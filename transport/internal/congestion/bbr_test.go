package congestion

import (
	"math"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/flightline/flightline/transport/internal/flight"
)

func newTestBBR() *bbr {
	b := NewBBR(BBRConfig{Seed: 1}).(*bbr)
	b.maxBw, b.bw, b.minRTT, b.fullBwReached = 10e6, 10e6, 20*time.Millisecond, true
	return b
}

// Drain and ProbeRTT send below the model on purpose; a lossy round there
// must not cut the short-term model to their delivery rate. The same round
// in CRUISE does (the draft's lower-bound adaptation).
func TestBBRLowerBoundsNotCutByDrain(t *testing.T) {
	for _, st := range []bbrState{bbrDrain, bbrProbeRTT} {
		b := newTestBBR()
		b.state = st
		b.lossInRound, b.bwLatest, b.inflLatest = true, 5e6, 100e3
		b.adaptLowerBoundsFromCongestion(true)
		require.True(t, math.IsInf(b.bwLo, 1), "%v cut bw_lo", st)
		require.True(t, math.IsInf(b.inflightLo, 1), "%v cut inflight_lo", st)
	}
	b := newTestBBR()
	b.state = bbrProbeBWCruise
	b.lossInRound, b.bwLatest, b.inflLatest = true, 5e6, 100e3
	b.adaptLowerBoundsFromCongestion(true)
	require.InDelta(t, 0.7*10e6, b.bwLo, 1, "max(bw_latest/(1-margin), 0.7·bw_lo)")
}

// With no background loss the "inflight too high" test is the draft's
// (lost > 2 % of tx_in_flight); with a background rate p0 the excess over
// p0 must be both > 2 % and > 3 standard deviations.
func TestBBRTooMuchLoss(t *testing.T) {
	b := newTestBBR()
	tx := 100 * b.mss
	require.False(t, b.tooMuchLoss(0, tx))
	require.False(t, b.tooMuchLoss(2*b.mss, tx), "exactly 2 %")
	require.True(t, b.tooMuchLoss(3*b.mss, tx), "3 % > 2 %")
	b.p0 = 0.05
	// Expected background 5 packets, sigma sqrt(100·0.05·0.95) ≈ 2.2:
	// the excess must exceed 6.5 packets.
	require.False(t, b.tooMuchLoss(8*b.mss, tx))
	require.False(t, b.tooMuchLoss(11*b.mss, tx))
	require.True(t, b.tooMuchLoss(12*b.mss, tx))
	b.p0 = 0.5 // p0 is used capped at 5 %
	require.True(t, b.tooMuchLoss(12*b.mss, tx))
	b.draftLoss = true
	require.True(t, b.tooMuchLoss(3*b.mss, tx), "the draft's response ignores p0")
}

func TestRoundMaxWindow(t *testing.T) {
	var f roundMax
	require.Equal(t, 5.0, f.update(1, 5, 10))
	require.Equal(t, 5.0, f.update(2, 3, 10))
	require.Equal(t, 3.0, f.update(2, 1, 1), "window of one round: this round's max")
	require.Equal(t, 5.0, f.update(10, 0, 10), "round 1 still inside 10 rounds")
	require.Equal(t, 3.0, f.update(11, 0, 10), "round 1 left the window, round 2 has not")
	require.Equal(t, 0.0, f.update(12, 0, 10), "round 2 left too")
	require.Equal(t, 7.0, f.update(1000, 7, 10), "a jump clears everything")
	require.Equal(t, 7.0, f.update(999, 2, 10), "a late update counts in the current round")
}

// Losses of packets sent before the first ProbeBW cycle (Startup's
// overshoot, declared up to a round later) do not count toward the
// short-term model's cut; later ones do.
func TestBBRStartupLossesDoNotCutLowerBounds(t *testing.T) {
	b := newTestBBR()
	b.state = bbrProbeBWCruise
	b.drainedAt = simT0.Add(time.Second)
	lost := func(sentAt time.Duration) *LossEvent {
		return &LossEvent{Now: simT0.Add(2 * time.Second), LostBytes: 1200, TotalLost: 1200,
			Packets: []flight.Resend{{PN: 7, Size: 1200, SentAt: simT0.Add(sentAt)}}}
	}
	b.OnLoss(lost(500 * time.Millisecond))
	require.True(t, b.lossInRound, "the loss is noted (loss rounds, p0)")
	require.False(t, b.lossForLo, "but sent during Startup: no short-term cut")
	b.OnLoss(lost(1500 * time.Millisecond))
	require.True(t, b.lossForLo)
}
