package congestion

import (
	"fmt"
	"github.com/stretchr/testify/require"
	"math"
	"testing"
	"time"

	"github.com/flightline/flightline/transport/internal/monotime"
)

// simPath is a fake bottleneck: a FIFO served at rate bytes/s with a
// drop-tail buffer of buffer bytes, followed by a fixed propagation delay of
// rtt (data and ACK legs folded together). Everything is time-as-data.
type simPath struct {
	rate   float64 // bytes/s
	rtt    time.Duration
	buffer float64 // bytes queued at most (not counting the one in service)
}

type simEvent struct {
	at     monotime.Time
	sentAt monotime.Time
	size   int
}

// fifo is a queue of events whose times never decrease.
type fifo struct {
	ev   []simEvent
	head int
}

func (q *fifo) push(e simEvent) { q.ev = append(q.ev, e) }
func (q *fifo) peek() (simEvent, bool) {
	if q.head == len(q.ev) {
		return simEvent{}, false
	}
	return q.ev[q.head], true
}
func (q *fifo) pop() simEvent { q.head++; return q.ev[q.head-1] }

type simResult struct {
	delivered  int64 // bytes acked after warm-up
	losses     int
	reductions int
	maxQueue   float64
	minAfterSS int64 // smallest window after the first reduction
}

// runSim drives CUBIC + pacer over path for dur of simulated time and returns
// what happened after warmup.
func runSim(t *testing.T, path simPath, dur, warmup time.Duration) simResult {
	t.Helper()
	cc := NewCubic(Config{})
	pacer := NewPacer(0)
	rtt := NewRTT(0)
	const size = mss
	var (
		res       simResult
		acks      fifo
		losses    fifo
		inFlight  int64
		busyUntil = t0
		now       = t0
		end       = t0.Add(dur)
		warm      = t0.Add(warmup)
		service   = time.Duration(float64(size) / path.rate * 1e9)
	)
	res.minAfterSS = math.MaxInt64
	const never = monotime.Time(math.MaxInt64)
	for steps := 0; now < end; steps++ {
		if steps > 50_000_000 {
			t.Fatal("simulation did not terminate")
		}
		sendAt := never
		if inFlight+size <= cc.Window() {
			sendAt = pacer.NextSendTime(now, size, cc.PacingRate())
		}
		ackAt, lossAt := never, never
		if e, ok := acks.peek(); ok {
			ackAt = e.at
		}
		if e, ok := losses.peek(); ok {
			lossAt = e.at
		}
		switch {
		case ackAt <= lossAt && ackAt <= sendAt:
			e := acks.pop()
			now = max(now, e.at)
			rtt.Update(now.Sub(e.sentAt), 0, 0)
			inFlight -= int64(e.size)
			if now >= warm {
				res.delivered += int64(e.size)
			}
			cc.OnAck(ackEv(now, e.size, e.sentAt, rtt, inFlight))
		case lossAt <= sendAt:
			e := losses.pop()
			now = max(now, e.at)
			inFlight -= int64(e.size)
			res.losses++
			before := cc.Window()
			cc.OnLoss(lossEv(now, e.size, e.sentAt, inFlight))
			if after := cc.Window(); after < before {
				res.reductions++
				require.InDelta(t, 0.7*float64(before), float64(after), 1, "multiplicative decrease")
			}
		default:
			if sendAt == never {
				t.Fatalf("stalled at %v with %d in flight, window %d", now.Sub(t0), inFlight, cc.Window())
			}
			now = sendAt
			pacer.OnSent(now, size, cc.PacingRate())
			inFlight += size
			cc.OnSent(now, size, inFlight)
			start := max(busyUntil, now)
			queued := float64(start.Sub(now)) / 1e9 * path.rate
			res.maxQueue = max(res.maxQueue, queued)
			if queued > path.buffer {
				// Drop-tail. The loss is detected when the packets queued
				// ahead and three more behind it (packet threshold) are acked.
				losses.push(simEvent{at: start.Add(3*service + path.rtt), sentAt: now, size: size})
				continue
			}
			busyUntil = start.Add(service)
			acks.push(simEvent{at: busyUntil.Add(path.rtt), sentAt: now, size: size})
		}
		if res.reductions > 0 {
			res.minAfterSS = min(res.minAfterSS, cc.Window())
		}
	}
	return res
}

// TestSimulationCubicPacedBottleneck checks that CUBIC with pacing fills a
// bottleneck (> 80 % utilisation) and reacts to drop-tail loss.
func TestSimulationCubicPacedBottleneck(t *testing.T) {
	for _, tc := range []struct {
		rate      float64 // bytes/s
		rtt       time.Duration
		bufferBDP float64
		dur       time.Duration
	}{
		{12.5e6, 20 * ms, 1, 10 * time.Second},    // 100 Mbit/s WAN-ish
		{125e6, 1 * ms, 0.5, 2 * time.Second},     // 1 Gbit/s LAN, shallow buffer
		{1.25e6, 50 * ms, 2, 20 * time.Second},    // 10 Mbit/s, deep buffer
		{12.5e6, 100 * ms, 0.3, 30 * time.Second}, // long fat-ish path, shallow buffer
	} {
		bdp := tc.rate * tc.rtt.Seconds()
		name := fmt.Sprintf("%.0fMbit_%v_buf%.1fBDP", tc.rate*8/1e6, tc.rtt, tc.bufferBDP)
		t.Run(name, func(t *testing.T) {
			path := simPath{rate: tc.rate, rtt: tc.rtt, buffer: tc.bufferBDP * bdp}
			warmup := tc.dur / 10
			res := runSim(t, path, tc.dur, warmup)
			util := float64(res.delivered) / (tc.rate * (tc.dur - warmup).Seconds())
			t.Logf("utilisation %.1f%%, %d losses, %d reductions, max queue %.0f B (%.2f BDP), min window after loss %d B (%.2f BDP)",
				100*util, res.losses, res.reductions, res.maxQueue, res.maxQueue/bdp, res.minAfterSS, float64(res.minAfterSS)/bdp)
			require.Greater(t, util, 0.80, "utilisation")
			require.LessOrEqual(t, util, 1.0001, "cannot beat the bottleneck")
			require.Greater(t, res.reductions, 0, "loss reaction happened")
			require.Less(t, res.reductions, res.losses, "at most one reduction per episode")
		})
	}
}
