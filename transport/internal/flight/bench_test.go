package flight

import (
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
)

// TestZeroAllocSteadyState: once the free lists and tables have reached the
// working size, Charge+Track+OnAck allocates nothing — with and without the
// checker.
func TestZeroAllocSteadyState(t *testing.T) {
	for _, cfg := range []Config{{}, {Check: true, Strict: true}} {
		t.Run(fmt.Sprintf("check=%v", cfg.Check), func(t *testing.T) {
			l := newLedger(cfg)
			payload := make([]byte, 1200)
			out := make([]Acked, 0, 64)
			ranges := make([]Range, 1)
			var pn uint64
			round := func() {
				start := pn
				for i := 0; i < 32; i++ {
					l.Charge(1200)
					l.Track(Sent{PN: pn, Stream: StreamID(pn % 3), Size: 1200, Payload: payload})
					pn++
				}
				ranges[0] = Range{start, pn - 1}
				out = l.OnAck(ranges, out[:0])
			}
			for i := 0; i < 100; i++ { // warm up free lists and tables
				round()
			}
			if a := testing.AllocsPerRun(200, round); a != 0 {
				t.Fatalf("%v allocs per 32 packets", a)
			}
			eq(t, l.Flight(), int64(0), "flight")
		})
	}
}

// benchTarget is the surface both tracker variants offer the benchmark.
type benchTarget interface {
	Charge(size int)
	Track(s Sent)
	OnAck(ranges []Range, out []Acked) []Acked
}

// mutexLedger is the baseline: the same operations on one Go map under one
// mutex, with the same record recycling and payload copies.
type mutexLedger struct {
	mu     sync.Mutex
	recs   map[uint64]*mrecord
	free   *mrecord
	flight Counter
}

type mrecord struct {
	pn, stream uint64
	size       int
	sentAt     int64
	buf        []byte
	next       *mrecord
}

func newMutexLedger() *mutexLedger { return &mutexLedger{recs: make(map[uint64]*mrecord)} }

func (m *mutexLedger) Charge(size int) { m.flight.Add(size) }

func (m *mutexLedger) Track(s Sent) {
	m.mu.Lock()
	r := m.free
	if r == nil {
		r = &mrecord{buf: make([]byte, 0, 1452)}
	} else {
		m.free = r.next
	}
	r.pn, r.stream, r.size, r.sentAt = s.PN, s.Stream, s.Size, int64(s.SentAt)
	r.buf = append(r.buf[:0], s.Payload...)
	m.recs[s.PN] = r
	m.mu.Unlock()
}

func (m *mutexLedger) OnAck(ranges []Range, out []Acked) []Acked {
	bytes := 0
	m.mu.Lock()
	for _, rg := range ranges {
		for pn := rg.Smallest; pn <= rg.Largest; pn++ {
			if r := m.recs[pn]; r != nil {
				delete(m.recs, pn)
				out = append(out, Acked{PN: pn, Stream: r.stream, Size: r.size})
				bytes += r.size
				r.next = m.free
				m.free = r
			}
		}
	}
	m.mu.Unlock()
	m.flight.Release(bytes)
	return out
}

// BenchmarkTracker: sender goroutines Charge+Track packets with atomically
// allocated PNs (in blocks of pnBlock) while one ACK goroutine acknowledges, in ranges of up to 32,
// every prefix of PNs that has been tracked. At most window packets are in
// flight. Reports packets/s; b.N is the number of packets.
func BenchmarkTracker(b *testing.B) {
	variants := []struct {
		name string
		new  func() benchTarget
	}{
		{"sharded", func() benchTarget { return newLedger(Config{}) }},
		{"mutex", func() benchTarget { return newMutexLedger() }},
	}
	for _, v := range variants {
		for _, g := range []int{1, 4, 8} {
			b.Run(fmt.Sprintf("%s/goroutines=%d", v.name, g), func(b *testing.B) {
				runTrackerBench(b, v.new(), g)
			})
		}
	}
}

func runTrackerBench(b *testing.B, tgt benchTarget, senders int) {
	const (
		window  = 4096
		ackSpan = 32
		pnBlock = 16
		size    = 1200
	)
	var published [window]atomic.Uint64 // pn+1 once pn is tracked
	var nextPN, acked atomic.Uint64
	// Senders that find the window full block (as on a congestion window)
	// instead of spinning, so they do not steal CPU from the ACK goroutine.
	var mu sync.Mutex
	cond := sync.NewCond(&mu)
	var waiting atomic.Int32
	total := uint64(b.N)
	payload := make([]byte, size)
	b.ReportAllocs()
	b.ResetTimer()
	var wg sync.WaitGroup
	for g := 0; g < senders; g++ {
		wg.Go(func() {
			var pn, end uint64
			for {
				if pn == end { // allocate PNs in blocks: less harness contention
					end = nextPN.Add(pnBlock)
					pn = end - pnBlock
				}
				if pn >= total {
					return
				}
				if pn-acked.Load() >= window {
					mu.Lock()
					waiting.Add(1)
					for pn-acked.Load() >= window {
						cond.Wait()
					}
					waiting.Add(-1)
					mu.Unlock()
				}
				tgt.Charge(size)
				tgt.Track(Sent{PN: pn, Stream: StreamID(g), Size: size, SentAt: 1, Payload: payload})
				published[pn%window].Store(pn + 1)
				pn++
			}
		})
	}
	ranges := make([]Range, 1)
	out := make([]Acked, 0, ackSpan)
	for next := uint64(0); next < total; {
		end := next
		for end < total && end-next < ackSpan && published[end%window].Load() == end+1 {
			end++
		}
		if end == next {
			runtime.Gosched()
			continue
		}
		ranges[0] = Range{next, end - 1}
		out = tgt.OnAck(ranges, out[:0])
		next = end
		acked.Store(next)
		if waiting.Load() > 0 {
			mu.Lock()
			cond.Broadcast()
			mu.Unlock()
		}
	}
	wg.Wait()
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "packets/s")
}

// BenchmarkSerial measures the per-packet cost of Charge+Track+OnAck on one
// goroutine (no contention): the bookkeeping price of the sharded design.
func BenchmarkSerial(b *testing.B) {
	for _, v := range []struct {
		name string
		tgt  benchTarget
	}{{"sharded", newLedger(Config{})}, {"mutex", newMutexLedger()}} {
		b.Run(v.name, func(b *testing.B) {
			payload := make([]byte, 1200)
			out := make([]Acked, 0, 32)
			ranges := make([]Range, 1)
			b.ReportAllocs()
			var pn uint64
			for i := 0; i < b.N; i++ {
				v.tgt.Charge(1200)
				v.tgt.Track(Sent{PN: pn, Stream: StreamID(pn & 3), Size: 1200, Payload: payload})
				pn++
				if pn%32 == 0 {
					ranges[0] = Range{pn - 32, pn - 1}
					out = v.tgt.OnAck(ranges, out[:0])
				}
			}
		})
	}
}
