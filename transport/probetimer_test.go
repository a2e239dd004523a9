package transport

import (
	"testing"
	"time"

	"github.com/flightline/flightline/transport/internal/monotime"
	"github.com/stretchr/testify/require"
)

// The probe schedule on a fake clock: two tail-loss probes (PTO, then 2·PTO;
// window untouched), then RTOs with exponential backoff, all reset by ACK
// progress.
func TestProbeTimerSchedule(t *testing.T) {
	pto := func(int) time.Duration { return 10 * time.Millisecond }
	rto := func(b int) time.Duration { return (200 * time.Millisecond) << b }
	var p probeTimer
	t0 := monotime.Time(1_000_000_000)

	require.Zero(t, p.deadline(true, pto, rto), "no deadline before any send")
	p.onSent(t0)
	require.Zero(t, p.deadline(false, pto, rto), "no deadline with nothing outstanding")
	require.Equal(t, t0.Add(10*time.Millisecond), p.deadline(true, pto, rto))

	require.Equal(t, probeNone, p.fire(t0.Add(9*time.Millisecond), true, pto, rto))
	now := t0.Add(10 * time.Millisecond)
	require.Equal(t, probeTLP, p.fire(now, true, pto, rto))
	// The second probe waits twice as long.
	require.Equal(t, now.Add(20*time.Millisecond), p.deadline(true, pto, rto))
	now = now.Add(20 * time.Millisecond)
	require.Equal(t, probeTLP, p.fire(now, true, pto, rto))
	// Then the first RTO, 200 ms after the last probe.
	require.Equal(t, now.Add(200*time.Millisecond), p.deadline(true, pto, rto))
	require.Equal(t, probeNone, p.fire(now.Add(199*time.Millisecond), true, pto, rto))
	now = now.Add(200 * time.Millisecond)
	require.Equal(t, probeRTO, p.fire(now, true, pto, rto))
	require.Equal(t, now.Add(400*time.Millisecond), p.deadline(true, pto, rto), "RTO backs off")
	now = now.Add(400 * time.Millisecond)
	require.Equal(t, probeRTO, p.fire(now, true, pto, rto))
	require.Equal(t, now.Add(800*time.Millisecond), p.deadline(true, pto, rto))

	// ACK progress: a fresh flight gets probes first again, and no backoff.
	p.onAckProgress()
	p.onSent(now)
	require.Equal(t, now.Add(10*time.Millisecond), p.deadline(true, pto, rto))
	require.Equal(t, probeTLP, p.fire(now.Add(10*time.Millisecond), true, pto, rto))
	require.Equal(t, now.Add(30*time.Millisecond), p.deadline(true, pto, rto))
}

func TestProbeTimerProbesPerFlightBounded(t *testing.T) {
	pto := func(int) time.Duration { return time.Millisecond }
	rto := func(b int) time.Duration { return time.Second << b }
	var p probeTimer
	p.onSent(1)
	tlps := 0
	for now := monotime.Time(1); now < monotime.Time(10*time.Second); now += monotime.Time(time.Millisecond) {
		if p.fire(now, true, pto, rto) == probeTLP {
			tlps++
		}
	}
	require.Equal(t, maxTLPs, tlps, "probes per flight are bounded")
	require.Equal(t, 3, p.backoff, "1 s, 2 s, 4 s RTOs fit in 10 s after the probes")
}

func TestAckStateRangesAndObligations(t *testing.T) {
	var a ackState
	now := monotime.Time(1)
	for _, pn := range []uint64{0, 1, 2, 5, 4, 9, 3} {
		require.True(t, a.insert(pn))
	}
	require.False(t, a.insert(4), "duplicate")
	require.Equal(t, []struct{ s, l uint64 }{{9, 9}, {0, 5}}, func() (r []struct{ s, l uint64 }) {
		for _, x := range a.ranges {
			r = append(r, struct{ s, l uint64 }{x.Smallest, x.Largest})
		}
		return
	}())
	// One eliciting in-order packet: ACK delayed up to maxAckDelay.
	var b ackState
	b.insert(0)
	b.onPacket(0, now, true, 2*time.Millisecond)
	require.False(t, b.owed(now))
	require.True(t, b.owed(now.Add(2*time.Millisecond)))
	// Second eliciting packet: immediate.
	b.insert(1)
	b.onPacket(1, now, true, 2*time.Millisecond)
	require.True(t, b.owed(now))
	buf := b.appendFrame(nil, now)
	require.NotEmpty(t, buf)
	require.False(t, b.pending())
	// ACK-only packets never create an obligation (no ack-of-ack loop).
	b.insert(2)
	b.onPacket(2, now, false, 2*time.Millisecond)
	require.False(t, b.pending())
	// A gap makes the ACK immediate.
	b.insert(10)
	b.onPacket(10, now, true, 2*time.Millisecond)
	require.True(t, b.owed(now))
}

func TestAckStateBounded(t *testing.T) {
	var a ackState
	for pn := uint64(0); pn < 10*maxAckRanges; pn += 2 {
		a.insert(pn)
	}
	require.LessOrEqual(t, len(a.ranges), maxAckRanges)
}

func TestRecvBufferReassembly(t *testing.T) {
	data := randomData(5, 20000)
	var b recvBuffer
	// Out of order, overlapping, duplicated.
	b.insert(5000, data[5000:9000])
	b.insert(0, data[0:3000])
	b.insert(2000, data[2000:6000])
	b.insert(5000, data[5000:9000])
	b.insert(9000, data[9000:20000])
	b.insert(3000, data[3000:5000])
	got := make([]byte, 0, len(data))
	buf := make([]byte, 777)
	for b.readable() {
		n := b.read(buf)
		got = append(got, buf[:n]...)
	}
	require.Equal(t, data, got)
	require.Zero(t, b.buffered)
	// Data already read is ignored.
	b.insert(100, data[100:200])
	require.False(t, b.readable())
}
