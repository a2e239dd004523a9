package flight

import (
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestConcurrentRandomized runs every operation from many goroutines at once
// (under -race in CI) with the checker on, so each operation is followed by a
// consistent flight == Σ tracked + pending check. At the end everything is
// acknowledged (or the ledger closed) and flight and Len must be exactly 0.
func TestConcurrentRandomized(t *testing.T) {
	for seed := uint64(1); seed <= 3; seed++ {
		for _, end := range []string{"ack", "close"} {
			t.Run(fmt.Sprintf("seed%d/%s", seed, end), func(t *testing.T) { runConcurrent(t, seed, end) })
		}
	}
}

func runConcurrent(t *testing.T, seed uint64, end string) {
	const (
		senders   = 3
		perSender = 600
	)
	l := NewLedger(Config{Shards: 4})
	var next atomic.Uint64
	var clock atomic.Int64
	now := func() int64 { return clock.Add(1) }
	streams := []StreamID{1, 2, 3, 4, 5, Control}
	var stop atomic.Bool
	var wg, workers sync.WaitGroup

	// refreshOrFail finishes a handed-out resend the way the connection does.
	refreshOrFail := func(rng *rand.Rand, rs []Resend) {
		for _, r := range rs {
			if rng.IntN(5) == 0 {
				l.ResendFailed(r.PN)
			} else {
				l.Refresh(r.PN, next.Add(1)-1, mt(now()))
			}
		}
	}
	for g := 0; g < senders; g++ {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(seed, uint64(g)))
			payload := make([]byte, 1452)
			for i := 0; i < perSender; i++ {
				pn := next.Add(1) - 1
				size := rng.IntN(1453)
				l.Charge(size)
				if rng.IntN(20) == 0 {
					l.ReleaseUnsent(pn, size)
					continue
				}
				l.Track(Sent{PN: pn, Stream: streams[rng.IntN(len(streams))], Size: size, SentAt: mt(now()), Payload: payload[:size]})
			}
		})
	}
	worker := func(id uint64, body func(rng *rand.Rand)) {
		workers.Go(func() {
			rng := rand.New(rand.NewPCG(seed, 100+id))
			for !stop.Load() {
				body(rng)
			}
		})
	}
	for a := uint64(0); a < 2; a++ {
		worker(a, func(rng *rand.Rand) {
			hi := next.Load()
			var ranges []Range
			for i := 0; i < 3 && hi > 0; i++ {
				lg := hi - 1 - rng.Uint64N(min(hi, 10))
				sm := lg - rng.Uint64N(min(lg+1, 20))
				ranges = append(ranges, Range{sm, lg})
				if sm == 0 {
					break
				}
				hi = sm - 1
			}
			l.OnAck(ranges, nil)
		})
	}
	worker(10, func(rng *rand.Rand) {
		hi := next.Load()
		rs, _, _, _ := l.DetectLost(LossParams{
			Now: mt(now()), LargestAcked: rng.Uint64N(hi + 1), HaveLargest: true,
			LossDelay: time.Duration(rng.IntN(5)) * time.Microsecond, MaxSends: 4,
		}, nil, nil, nil)
		refreshOrFail(rng, rs)
	})
	worker(11, func(rng *rand.Rand) {
		rs, _, _ := l.TakeOldest(rng.IntN(3), 4, nil, nil, nil)
		if rng.IntN(3) == 0 {
			rs, _ = l.TakeNewest(rs, nil)
		}
		refreshOrFail(rng, rs)
	})
	worker(12, func(rng *rand.Rand) {
		l.DropStream(streams[rng.IntN(len(streams))])
	})
	worker(13, func(rng *rand.Rand) {
		_ = l.Len() + l.StreamBytes(streams[rng.IntN(len(streams))])
		_ = l.OldestSentAt()
	})
	wg.Wait()
	stop.Store(true)
	workers.Wait()

	requireSound(t, l)
	switch end {
	case "ack":
		l.OnAck([]Range{{0, next.Load()}}, nil)
	case "close":
		l.Close()
	}
	eq(t, l.Flight(), int64(0), "flight")
	eq(t, l.Len(), 0, "len")
	eq(t, l.Underflows(), uint64(0), "underflows")
	eq(t, l.Violations(), uint64(0), "violations")
	requireSound(t, l)
}
