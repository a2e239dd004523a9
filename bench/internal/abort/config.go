package abort

import (
	"fmt"
	"math"
	"time"
)

// Config shapes one run. The zero value is the default scenario; every
// field documents its default.
type Config struct {
	// Delay is the round-trip delay the path adds, all of it on the B→A
	// (ACK) direction: testnet's delay lives in a userspace hop whose queue
	// is unbounded, and in front of the rate limiter it turns into seconds
	// of queue (measured: SRTT 320 ms, bounded only by flow control), while
	// the data direction through the kernel's tbf alone keeps tbf's 50 ms
	// drop-tail queue. Default 10 ms.
	Delay time.Duration
	// Rate is the A→B bottleneck in bits per second of Ethernet frames (tbf
	// in the testnet hop, queueing at most 50 ms). Default 100 Mbit/s.
	Rate int64
	// Warmup is how long stream A sends alone before the loss event: slow
	// start's overshoot and its recovery take about 400 ms at the defaults.
	// Default 800 ms.
	Warmup time.Duration
	// Steady is the end part of the warm-up whose median 10 ms goodput of
	// A is SteadyMBps. Default 200 ms; at least 10 ms, at most Warmup.
	Steady time.Duration
	// Quiet is how long the sender's ACK counter must stand still (after at
	// least one SRTT) for A's window to count as lost. Default 5 ms: at full
	// rate ACKs come at least every MaxAckDelay (2 ms).
	Quiet time.Duration
	// MaxStall bounds the wait for the ACKs to stop. It must stay below the
	// first retransmission timeout (MinRTO 200 ms), which would collapse the
	// window. Default 150 ms.
	MaxStall time.Duration
	// Smooth is the trailing window over which B's goodput must reach the
	// threshold. Default 0: max(10 ms, 2 × the measured MinRTT), rounded up
	// to a millisecond. Not shorter: the bottleneck's token bucket holds
	// 10 ms of traffic, and a sender with a full window and an idle queue
	// gets that bucket through at once (measured: 21 MB/s over 10 ms on a
	// 12.5 MB/s path), which a window of 10 ms would count as full rate.
	Smooth time.Duration
	// Threshold is the fraction of SteadyMBps that counts as full rate.
	// Default 0.9.
	Threshold float64
	// Post bounds the run after the abort: FirstByte and FullRate not
	// reached by then are reported as -1. Default 2 s.
	Post time.Duration
	// Tail is how long sampling continues once B reached full rate.
	// Default 200 ms.
	Tail time.Duration
	// Lead is how much of the time before the loss event Series covers.
	// Default 50 ms.
	Lead time.Duration
	// Seed selects the payload pattern. Default 1.
	Seed uint64
	// Deadline bounds the whole run, network setup and teardown included.
	// Default 30 s.
	Deadline time.Duration
}

// Sampling resolution: the sender's state is read and the receiver's bytes
// are binned at this interval.
const tick = time.Millisecond

func (c Config) withDefaults() (Config, error) {
	def := func(d *time.Duration, v time.Duration) {
		if *d == 0 {
			*d = v
		}
	}
	def(&c.Delay, 10*time.Millisecond)
	def(&c.Warmup, 800*time.Millisecond)
	def(&c.Steady, 200*time.Millisecond)
	def(&c.Quiet, 5*time.Millisecond)
	def(&c.MaxStall, 150*time.Millisecond)
	def(&c.Post, 2*time.Second)
	def(&c.Tail, 200*time.Millisecond)
	def(&c.Lead, 50*time.Millisecond)
	def(&c.Deadline, 30*time.Second)
	if c.Rate == 0 {
		c.Rate = 100e6
	}
	if c.Threshold == 0 {
		c.Threshold = 0.9
	}
	if c.Seed == 0 {
		c.Seed = 1
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{{"Delay", c.Delay}, {"Warmup", c.Warmup}, {"Steady", c.Steady}, {"Quiet", c.Quiet},
		{"MaxStall", c.MaxStall}, {"Smooth", c.Smooth}, {"Post", c.Post}, {"Tail", c.Tail},
		{"Lead", c.Lead}, {"Deadline", c.Deadline}} {
		if d.v < 0 {
			return c, fmt.Errorf("abort: %s %v is negative", d.name, d.v)
		}
	}
	switch {
	case c.Rate < 0:
		return c, fmt.Errorf("abort: Rate %d is negative", c.Rate)
	case math.IsNaN(c.Threshold) || c.Threshold <= 0 || c.Threshold > 1:
		return c, fmt.Errorf("abort: Threshold %v outside (0,1]", c.Threshold)
	case c.Steady > c.Warmup:
		return c, fmt.Errorf("abort: Steady %v is longer than Warmup %v", c.Steady, c.Warmup)
	case c.Steady < steadyBin:
		return c, fmt.Errorf("abort: Steady %v is below %v", c.Steady, steadyBin)
	}
	return c, nil
}

// span is how long the receiver's bins must cover from the start of the
// warm-up: everything Run can wait for, with slack for slow steps.
func (c Config) span() time.Duration {
	return c.Warmup + c.MaxStall + c.Post + c.Tail + time.Second
}
