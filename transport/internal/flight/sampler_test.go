package flight

import (
	"math/rand/v2"
	"testing"
	"time"

	"github.com/flightline/flightline/transport/internal/monotime"
	"github.com/stretchr/testify/require"
)

const sz = 1000

// pipe drives a Ledger like a connection over a fixed-rate, fixed-delay
// path: send(t) charges and tracks a packet, ack(t, pn) acknowledges one.
type pipe struct {
	t  *testing.T
	l  *Ledger
	pn uint64
}

func newPipe(t *testing.T) *pipe { return &pipe{t: t, l: NewLedger(Config{})} }

func (p *pipe) send(now monotime.Time) uint64 {
	p.l.Charge(sz)
	pn := p.pn
	p.pn++
	p.l.Track(Sent{PN: pn, Size: sz, SentAt: now})
	return pn
}

func (p *pipe) ack(now monotime.Time, pns ...uint64) RateSample {
	var rs []Range
	for i := len(pns) - 1; i >= 0; i-- {
		rs = append(rs, Range{pns[i], pns[i]})
	}
	_, s := p.l.Ack(now, rs, nil)
	return s
}

func at(d time.Duration) monotime.Time { return monotime.Time(1).Add(d) }

// A paced flow at 1 MB/s over a 10 ms path: once the pipe is full every
// sample is the sending rate, the interval covers one flight, and
// Delivered counts the bytes acked since the packet left.
func TestSamplerSteadyRate(t *testing.T) {
	p := newPipe(t)
	const gap = time.Millisecond // 1000 B per ms = 1 MB/s
	const owd = 10 * time.Millisecond
	var sentAt []monotime.Time
	acked := 0
	var last RateSample
	for i := 0; i < 200; i++ {
		now := at(time.Duration(i) * gap)
		// Deliver ACKs due by now first (each packet acked owd after send).
		for acked < len(sentAt) && sentAt[acked].Add(owd) <= now {
			last = p.ack(sentAt[acked].Add(owd), uint64(acked))
			acked++
		}
		sentAt = append(sentAt, now)
		p.send(now)
	}
	rate, ok := last.Rate(owd)
	require.True(t, ok, "sample has a rate: %+v", last)
	require.InEpsilon(t, 1e6, rate, 0.02)
	require.InDelta(t, float64(owd), float64(last.Interval), float64(gap))
	require.Equal(t, owd, last.RTT)
	require.False(t, last.IsAppLimited)
	require.EqualValues(t, sz, last.NewlyAcked)
	require.InDelta(t, 11*sz, float64(last.TxInFlight), 2*sz) // owd/gap packets + itself
}

// ACK compression: a whole flight acknowledged at once must not be read as
// an infinite ack rate; the send interval caps it.
func TestSamplerAckCompressionCappedBySendRate(t *testing.T) {
	p := newPipe(t)
	var pns []uint64
	p.send(at(0))
	p.ack(at(10*time.Millisecond), 0) // establishes delivered_time
	for i := 0; i < 10; i++ {
		pns = append(pns, p.send(at(10*time.Millisecond+time.Duration(i)*time.Millisecond)))
	}
	// All ten acked in one frame at 30 ms.
	rs := p.ack(at(30*time.Millisecond), pns...)
	rate, ok := rs.Rate(time.Millisecond)
	require.True(t, ok)
	// 10 packets delivered; send_elapsed 9 ms from the first-send mark at
	// 10 ms? No: first_send_time was the acked packet's send (0), so the send
	// interval is 19 ms; the ack interval is 20 ms. Rate = 10 kB / 20 ms.
	require.InEpsilon(t, 10*sz/0.020, rate, 1e-9)
	require.LessOrEqual(t, rate, sz/0.001+1, "never above the send rate")
}

// A retransmission is sampled like a first send: the resend's snapshot
// replaces the original's whole, so the RTO wait is not in the send
// interval and the lost bytes of the original are counted in Lost of
// later samples but not in the resend's.
func TestSamplerResendRekeysSnapshot(t *testing.T) {
	p := newPipe(t)
	p.send(at(0))                     // pn 0: lost
	p.send(at(time.Millisecond))      // pn 1
	p.ack(at(11*time.Millisecond), 1) // delivered 1000
	// RTO at 300 ms hands out pn 0 (counted lost) and resends it as pn 2.
	var resend []Resend
	resend, _, _ = p.l.TakeOldest(1, 0, resend, nil, nil)
	require.Len(t, resend, 1)
	require.EqualValues(t, 0, resend[0].LostBefore)
	require.Equal(t, uint64(sz), p.l.Sampler().Lost)
	p.pn = 2
	require.True(t, p.l.Refresh(0, 2, at(300*time.Millisecond)))
	// Late ACK of the original number: ignored (record re-keyed).
	rs := p.ack(at(301*time.Millisecond), 0)
	require.False(t, rs.Acked)
	rs = p.ack(at(310*time.Millisecond), 2)
	require.True(t, rs.Acked)
	require.Equal(t, 10*time.Millisecond, rs.RTT, "RTT from the resend")
	require.EqualValues(t, 0, rs.Lost, "the original's loss happened before the resend")
	require.EqualValues(t, sz, rs.TxInFlight)
	require.EqualValues(t, sz, rs.Delivered)
	// send_elapsed = resend time - first_send_time (pn 1's send at 1 ms) would
	// include the RTO wait; the ack interval is 310-11 ms. Either way the
	// interval is long and the rate low, never inflated.
	rate, ok := rs.Rate(10 * time.Millisecond)
	require.True(t, ok)
	require.Less(t, rate, sz/0.010)
	require.Equal(t, uint64(2*sz), p.l.Sampler().Delivered, "each payload counted delivered once")
}

// The idle rule: after everything was acknowledged, the next send starts a
// new epoch, so the idle time is in neither interval.
func TestSamplerIdleRestart(t *testing.T) {
	p := newPipe(t)
	p.send(at(0))
	p.ack(at(10*time.Millisecond), 0)
	// Idle for a second.
	p.send(at(time.Second))
	p.send(at(time.Second + time.Millisecond))
	rs := p.ack(at(time.Second+11*time.Millisecond), 1, 2)
	require.True(t, rs.Acked)
	require.Equal(t, time.Millisecond, rs.SendElapsed)
	require.Equal(t, 11*time.Millisecond, rs.AckElapsed)
	rate, ok := rs.Rate(10 * time.Millisecond)
	require.True(t, ok)
	require.InEpsilon(t, 2*sz/0.011, rate, 1e-9)
}

// App-limited marking tags every packet sent until the flight at marking
// time is delivered, then clears; lost bytes lower the marker so it still
// clears when part of that flight never arrives.
func TestSamplerAppLimitedBubble(t *testing.T) {
	p := newPipe(t)
	p.send(at(0)) // 0
	p.send(at(0)) // 1
	p.send(at(0)) // 2
	p.l.MarkAppLimited()
	require.EqualValues(t, 3*sz, p.l.Sampler().AppLimited)
	p.send(at(time.Millisecond)) // 3: tagged
	rs := p.ack(at(10*time.Millisecond), 0)
	require.False(t, rs.IsAppLimited, "sent before the mark")
	// pn 1 is lost: the marker drops by its size.
	var resend []Resend
	resend, _, _, _ = p.l.DetectLost(LossParams{Now: at(20 * time.Millisecond), LargestAcked: 2, HaveLargest: true, PacketThreshold: 1}, resend, nil, nil)
	require.Len(t, resend, 1)
	st := p.l.Sampler()
	require.EqualValues(t, 2*sz, st.AppLimited, "lowered by the lost bytes")
	rs = p.ack(at(21*time.Millisecond), 2, 3)
	require.True(t, rs.IsAppLimited)
	require.Zero(t, p.l.Sampler().AppLimited, "cleared: delivered passed the lowered marker")
}

// Property: on a path of capacity C with random loss, retransmissions and
// ACKs arriving in random batches, no sample's rate exceeds the send rate
// cap. The sender paces at C; every rate must stay at or below C (plus one
// packet per interval of rounding).
func TestSamplerNeverAboveBottleneck(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	p := newPipe(t)
	const gap = 100 * time.Microsecond // 10 MB/s
	const owd = 5 * time.Millisecond
	type inflight struct {
		pn     uint64
		arrive monotime.Time
	}
	var q []inflight
	var resends []Resend
	now := at(0)
	var maxRate float64
	samples := 0
	for i := 0; i < 20000; i++ {
		now = now.Add(gap)
		// ACK everything arrived, in batches of random size.
		var batch []uint64
		for len(q) > 0 && q[0].arrive <= now {
			batch = append(batch, q[0].pn)
			q = q[1:]
			if len(batch) >= 1+rng.IntN(8) {
				break
			}
		}
		if len(batch) > 0 {
			rs := p.ack(now, batch...)
			if r, ok := rs.Rate(owd); ok {
				samples++
				maxRate = max(maxRate, r)
			}
			resends, _, _, _ = p.l.DetectLost(LossParams{Now: now, LargestAcked: batch[len(batch)-1], HaveLargest: true, LossDelay: 2 * owd}, resends, nil, nil)
		}
		// One packet per gap: a resend first, else new data.
		var pn uint64
		if len(resends) > 0 {
			r := resends[0]
			resends = resends[1:]
			pn = p.pn
			p.pn++
			if !p.l.Refresh(r.PN, pn, now) {
				continue
			}
		} else {
			pn = p.send(now)
		}
		if rng.Float64() < 0.05 {
			continue // lost
		}
		q = append(q, inflight{pn, now.Add(2 * owd)})
	}
	require.Greater(t, samples, 1000)
	require.LessOrEqual(t, maxRate, 1.02*sz/gap.Seconds(), "a sample above the send rate")
	require.Greater(t, maxRate, 0.8*sz/gap.Seconds())
}
