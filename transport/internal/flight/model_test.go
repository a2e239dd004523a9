package flight

import (
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/flightline/flightline/transport/internal/monotime"
)

// model is the naive reference: one map, no sharding, no lists.
type model struct {
	recs   map[uint64]*mrec
	flight int64
	closed bool
}

type mrec struct {
	stream      StreamID
	size        int
	sentAt      monotime.Time
	sends       int
	resending   bool
	firstSentAt monotime.Time
}

func (m *model) sortedPNs() []uint64 { return slices.Sorted(maps.Keys(m.recs)) }

func (m *model) remove(pn uint64) {
	m.flight -= int64(m.recs[pn].size)
	delete(m.recs, pn)
}

var modelStreams = []StreamID{1, 2, 3, 4, Control}

// TestDifferentialModel drives the Ledger and the model with the same seeded
// random operations and compares every result and the flight, Len and
// per-stream bytes after each operation.
func TestDifferentialModel(t *testing.T) {
	for seed := uint64(1); seed <= 6; seed++ {
		t.Run(fmt.Sprint("seed", seed), func(t *testing.T) { runModel(t, seed, 3000) })
	}
}

func runModel(t *testing.T, seed uint64, ops int) {
	rng := rand.New(rand.NewPCG(seed, 0xf1))
	l := NewLedger(Config{Shards: 1 << rng.IntN(4)})
	m := &model{recs: map[uint64]*mrec{}}
	var next uint64
	var handedOut []uint64 // PNs handed out and not yet refreshed/failed (may be gone)
	now := int64(0)
	for op := 0; op < ops; op++ {
		now += int64(rng.IntN(20))
		var what string
		switch k := rng.IntN(100); {
		case k < 40:
			what = "send"
			pn, s, size := next, modelStreams[rng.IntN(len(modelStreams))], rng.IntN(1453)
			next++
			send(l, pn, s, size, now)
			if !m.closed {
				m.recs[pn] = &mrec{stream: s, size: size, sentAt: mt(now), firstSentAt: mt(now), sends: 1}
				m.flight += int64(size)
			}
		case k < 44:
			what = "failed send"
			l.Charge(100)
			l.ReleaseUnsent(next, 100)
			next++
		case k < 62:
			what = "ack"
			var ranges []Range
			hi := next + 2
			for i := 0; i < 1+rng.IntN(4) && hi > 0; i++ {
				lg := hi - 1 - rng.Uint64N(min(hi, 6))
				sm := lg - rng.Uint64N(min(lg+1, 8))
				ranges = append(ranges, Range{sm, lg})
				if sm == 0 {
					break
				}
				hi = sm - 1
			}
			got := l.OnAck(ranges, nil)
			var want []uint64
			for _, rg := range ranges {
				for pn := rg.Smallest; pn <= rg.Largest; pn++ {
					if r, ok := m.recs[pn]; ok {
						want = append(want, pn)
						for _, a := range got {
							if a.PN == pn && (a.Size != r.size || a.Stream != r.stream || a.Sends != r.sends ||
								a.SentAt != r.sentAt || a.FirstSentAt != r.firstSentAt) {
								t.Fatalf("op %d: acked %+v, model %+v", op, a, *r)
							}
						}
						m.remove(pn)
					}
				}
			}
			sameSet(t, ackedPNs(got), want, fmt.Sprintf("op %d ack %v", op, ranges))
		case k < 70:
			what = "detect lost"
			p := LossParams{
				Now: mt(now), LargestAcked: rng.Uint64N(next + 1), HaveLargest: rng.IntN(8) != 0,
				PacketThreshold: uint64(rng.IntN(4)), LossDelay: time.Duration(rng.IntN(200)) * time.Millisecond,
				MaxSends: rng.IntN(5),
			}
			rs, _, ab, nextLoss := l.DetectLost(p, nil, nil, nil)
			var wantR, wantA []uint64
			var wantNext monotime.Time
			if p.HaveLargest {
				thr := cmpOr(p.PacketThreshold, DefaultPacketThreshold)
				for _, pn := range m.sortedPNs() {
					r := m.recs[pn]
					if pn >= p.LargestAcked || r.resending {
						continue
					}
					if p.LargestAcked-pn >= thr || r.sentAt <= p.Now.Add(-p.LossDelay) {
						if r.sends >= maxSendsOr(p.MaxSends) {
							wantA = append(wantA, pn)
							m.remove(pn)
						} else {
							wantR = append(wantR, pn)
							r.resending = true
						}
					} else if lt := r.sentAt.Add(p.LossDelay); wantNext == 0 || lt < wantNext {
						wantNext = lt
					}
				}
			}
			eq(t, fmt.Sprint(resendPNs(rs)), fmt.Sprint(orEmpty(wantR)), fmt.Sprintf("op %d lost", op))
			eq(t, fmt.Sprint(abandonedPNs(ab)), fmt.Sprint(orEmpty(wantA)), fmt.Sprintf("op %d abandoned", op))
			eq(t, nextLoss, wantNext, fmt.Sprintf("op %d next loss", op))
			handedOut = append(handedOut, resendPNs(rs)...)
		case k < 76:
			what = "take oldest"
			n, maxSends := rng.IntN(4), 1+rng.IntN(4)
			rs, _, ab := l.TakeOldest(n, maxSends, nil, nil, nil)
			var wantR, wantA []uint64
			for _, pn := range m.sortedPNs() {
				if len(wantR)+len(wantA) == n {
					break
				}
				if r := m.recs[pn]; !r.resending {
					if r.sends >= maxSends {
						wantA = append(wantA, pn)
						m.remove(pn)
					} else {
						wantR = append(wantR, pn)
						r.resending = true
					}
				}
			}
			eq(t, fmt.Sprint(resendPNs(rs)), fmt.Sprint(orEmpty(wantR)), fmt.Sprintf("op %d oldest", op))
			eq(t, fmt.Sprint(abandonedPNs(ab)), fmt.Sprint(orEmpty(wantA)), fmt.Sprintf("op %d oldest abandoned", op))
			handedOut = append(handedOut, wantR...)
		case k < 79:
			what = "take newest"
			rs, _ := l.TakeNewest(nil, nil)
			var want []uint64
			pnsDesc := m.sortedPNs()
			slices.Reverse(pnsDesc)
			for _, pn := range pnsDesc {
				if r := m.recs[pn]; !r.resending {
					want = []uint64{pn}
					r.resending = true
					break
				}
			}
			eq(t, fmt.Sprint(resendPNs(rs)), fmt.Sprint(orEmpty(want)), fmt.Sprintf("op %d newest", op))
			handedOut = append(handedOut, want...)
		case k < 92 && len(handedOut) > 0:
			i := rng.IntN(len(handedOut))
			old := handedOut[i]
			handedOut = slices.Delete(handedOut, i, i+1)
			if rng.IntN(4) == 0 {
				what = "resend failed"
				l.ResendFailed(old)
				if r, ok := m.recs[old]; ok {
					r.resending = false
				}
				break
			}
			what = "refresh"
			got := l.Refresh(old, next, mt(now))
			r, ok := m.recs[old]
			eq(t, got, ok, fmt.Sprintf("op %d refresh %d", op, old))
			if ok {
				delete(m.recs, old)
				r.sentAt, r.resending = mt(now), false
				r.sends++
				m.recs[next] = r
			}
			next++
		case k < 97:
			what = "drop stream"
			s := modelStreams[rng.IntN(len(modelStreams))]
			want := 0
			if s != Control {
				for pn, r := range m.recs {
					if r.stream == s {
						want += r.size
						m.remove(pn)
					}
				}
			}
			eq(t, l.DropStream(s), want, fmt.Sprintf("op %d drop %d", op, s))
		case k == 99 && rng.IntN(10) == 0:
			what = "close"
			want := int(m.flight)
			m.recs, m.flight, m.closed = map[uint64]*mrec{}, 0, true
			eq(t, l.Close(), want, "close")
		default:
			what = "noop"
		}
		where := fmt.Sprintf("op %d (%s)", op, what)
		eq(t, l.Flight(), m.flight, where+": flight")
		eq(t, l.Len(), len(m.recs), where+": len")
		for _, s := range modelStreams {
			want := 0
			for _, r := range m.recs {
				if r.stream == s {
					want += r.size
				}
			}
			eq(t, l.StreamBytes(s), want, fmt.Sprintf("%s: stream %d bytes", where, s))
		}
		var oldest monotime.Time
		for _, pn := range m.sortedPNs() {
			if r := m.recs[pn]; !r.resending {
				oldest = r.sentAt
				break
			}
		}
		if len(m.recs) > 0 && oldest != 0 {
			// Per shard the lowest idle PN is read; with monotone send times
			// that is the global minimum.
			eq(t, l.OldestSentAt(), oldest, where+": oldest sentAt")
		}
		if op%100 == 0 {
			requireSound(t, l)
		}
	}
	// Drain: fail outstanding resends, ack everything.
	for _, pn := range handedOut {
		l.ResendFailed(pn)
	}
	l.OnAck([]Range{{0, next}}, nil)
	eq(t, l.Flight(), int64(0), "final flight")
	eq(t, l.Len(), 0, "final len")
	requireSound(t, l)
}

func cmpOr(v, def uint64) uint64 {
	if v == 0 {
		return def
	}
	return v
}
