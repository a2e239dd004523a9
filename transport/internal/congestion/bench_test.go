package congestion

import (
	"github.com/stretchr/testify/require"
	"testing"
	"time"
)

// Hot-path benchmarks; each must report 0 allocs/op.

func BenchmarkCubicOnAck(b *testing.B) {
	for _, phase := range []string{"slowstart", "avoidance"} {
		b.Run(phase, func(b *testing.B) {
			c := NewCubic(Config{MaxWindow: 1 << 40})
			rtt := NewRTT(0)
			rtt.Update(10*ms, 0, 0)
			now := t0
			if phase == "avoidance" {
				c.OnLoss(lossEv(now, mss, now, 0))
			}
			b.ReportAllocs()
			for b.Loop() {
				now += 1000
				c.OnAck(ackEv(now, mss, now.Add(-10*ms), rtt, c.Window()))
			}
		})
	}
}

func BenchmarkCubicOnSent(b *testing.B) {
	c := NewCubic(Config{})
	now := t0
	b.ReportAllocs()
	for b.Loop() {
		now += 1000
		c.OnSent(now, mss, 10*mss)
	}
}

func BenchmarkCubicWindowRead(b *testing.B) {
	c := NewCubic(Config{})
	b.ReportAllocs()
	var sink int64
	for b.Loop() {
		sink += c.Window() + int64(c.PacingRate())
	}
	_ = sink
}

func BenchmarkPacerBudget(b *testing.B) {
	p := NewPacer(0)
	now := t0
	b.ReportAllocs()
	for b.Loop() {
		now += 1000
		if p.Budget(now, 1e9) >= mss {
			p.OnSent(now, mss, 1e9)
		}
	}
}

func BenchmarkPacerNextSendTime(b *testing.B) {
	p := NewPacer(0)
	now := t0
	b.ReportAllocs()
	for b.Loop() {
		now = p.NextSendTime(now, mss, 1e9)
		p.OnSent(now, mss, 1e9)
	}
}

func BenchmarkRTTUpdate(b *testing.B) {
	r := NewRTT(0)
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		i++
		r.Update(time.Duration(10+i%5)*ms, ms, 25*ms)
	}
}

// TestHotPathZeroAllocs pins the 0-allocs property in the normal test run.
func TestHotPathZeroAllocs(t *testing.T) {
	c := NewCubic(Config{})
	rtt := NewRTT(0)
	rtt.Update(10*ms, 0, 0)
	p := NewPacer(0)
	now := t0
	// The transport reuses one event per receive loop; so do these.
	ack, loss := &AckEvent{RTT: rtt, AckedBytes: mss}, &LossEvent{LostBytes: mss}
	for name, f := range map[string]func(){
		"cubic.OnAck": func() {
			now += 1000
			ack.Now, ack.LargestSentAt, ack.InFlight = now, now-1, c.Window()
			c.OnAck(ack)
		},
		"cubic.OnSent": func() { c.OnSent(now, mss, 0) },
		"cubic.OnLoss": func() { now += 1000; loss.Now, loss.LostSentAt = now, now; c.OnLoss(loss) },
		"pacer.Budget": func() { now += 1000; p.Budget(now, 1e9) },
		"pacer.OnSent": func() { p.OnSent(now, mss, 1e9) },
		"pacer.Next":   func() { p.NextSendTime(now, mss, 1e9) },
		"rtt.Update":   func() { rtt.Update(10*ms, 0, 0) },
	} {
		require.Zero(t, testing.AllocsPerRun(100, f), name)
	}
}
