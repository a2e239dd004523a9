package flight

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/flightline/flightline/transport/internal/monotime"
)

// mt converts milliseconds to a monotime.Time.
func mt(ms int64) monotime.Time { return monotime.Time(ms * int64(time.Millisecond)) }

func pns[T any](xs []T, pn func(T) uint64) []uint64 {
	out := make([]uint64, len(xs))
	for i, x := range xs {
		out[i] = pn(x)
	}
	return out
}

func ackedPNs(a []Acked) []uint64         { return pns(a, func(x Acked) uint64 { return x.PN }) }
func resendPNs(r []Resend) []uint64       { return pns(r, func(x Resend) uint64 { return x.PN }) }
func abandonedPNs(a []Abandoned) []uint64 { return pns(a, func(x Abandoned) uint64 { return x.PN }) }

func sameSet(t testing.TB, got, want []uint64, what string) {
	t.Helper()
	g := map[uint64]int{}
	for _, x := range got {
		g[x]++
	}
	w := map[uint64]int{}
	for _, x := range want {
		w[x]++
	}
	if fmt.Sprint(g) != fmt.Sprint(w) {
		t.Fatalf("%s: got %v, want %v", what, got, want)
	}
}

func TestConfigShards(t *testing.T) {
	for _, tc := range []struct{ in, want int }{
		{0, 8}, {-1, 8}, {1, 1}, {3, 4}, {8, 8}, {9, 16}, {256, 256}, {1000, 256},
	} {
		eq(t, Config{Shards: tc.in}.shards(), tc.want, fmt.Sprintf("shards(%d)", tc.in))
	}
}

func TestTableMatchesMap(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	var tb table[int]
	tb.init(minTableSize)
	model := map[uint64]*int{}
	for i := 0; i < 200000; i++ {
		// Small key space forces long probe runs, wrap-around and shifts.
		k := rng.Uint64N(512) * 8
		if rng.IntN(3) == 0 {
			k = ^k // keys near MaxUint64 (Control)
		}
		if rng.IntN(2) == 0 {
			v := new(int)
			got := tb.insert(k, v)
			if got != model[k] {
				t.Fatalf("insert %d: present %p, model %p", k, got, model[k])
			}
			if got == nil {
				model[k] = v
			}
		} else {
			got := tb.remove(k)
			if got != model[k] {
				t.Fatalf("remove %d: %p, model %p", k, got, model[k])
			}
			delete(model, k)
		}
		if i%1000 == 0 {
			eq(t, tb.n, len(model), "table size")
			for mk, mv := range model {
				if tb.get(mk) != mv {
					t.Fatalf("get %d lost after %d ops", mk, i)
				}
			}
		}
	}
}

func TestTrackAckBasic(t *testing.T) {
	l := NewLedger(Config{})
	for pn := uint64(0); pn < 20; pn++ {
		send(l, pn, pn%3, 100+int(pn), int64(pn))
	}
	total := 0
	for pn := 0; pn < 20; pn++ {
		total += 100 + pn
	}
	eq(t, l.Flight(), int64(total), "flight")
	eq(t, l.Len(), 20, "len")

	// Descending ranges with holes, one already covering untracked PNs.
	out := l.OnAck([]Range{{15, 30}, {10, 12}, {3, 3}}, nil)
	sameSet(t, ackedPNs(out), []uint64{3, 10, 11, 12, 15, 16, 17, 18, 19}, "acked")
	for _, a := range out {
		eq(t, a.Size, 100+int(a.PN), "acked size")
		eq(t, a.Stream, a.PN%3, "acked stream")
		eq(t, a.SentAt, mt(int64(a.PN)), "acked sentAt")
		eq(t, a.Sends, 1, "sends")
	}
	// Re-acking is a no-op.
	eq(t, len(l.OnAck([]Range{{15, 30}, {10, 12}, {3, 3}}, nil)), 0, "re-ack")
	out = l.OnAck([]Range{{0, 100}}, out[:0])
	eq(t, len(out), 11, "rest")
	eq(t, l.Flight(), int64(0), "flight")
	eq(t, l.Len(), 0, "len")
	requireSound(t, l)
}

func TestAckBadRanges(t *testing.T) {
	for _, tc := range []struct {
		name   string
		ranges []Range
		want   []uint64
	}{
		{"ascending", []Range{{1, 2}, {5, 6}}, []uint64{1, 2, 5, 6}},
		{"overlapping", []Range{{4, 8}, {2, 6}}, []uint64{2, 3, 4, 5, 6, 7, 8}},
		{"inverted", []Range{{6, 4}, {1, 1}}, []uint64{1}},
		{"empty", nil, nil},
		{"max", []Range{{0, ^uint64(0)}}, []uint64{0, 1, 2, 3, 4, 5, 6, 7, 8, 9}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l := NewLedger(Config{Shards: 4})
			for pn := uint64(0); pn < 10; pn++ {
				send(l, pn, 1, 10, 0)
			}
			out := l.OnAck(tc.ranges, nil)
			sameSet(t, ackedPNs(out), tc.want, "acked")
			eq(t, l.Flight(), int64(10*(10-len(tc.want))), "flight")
			requireSound(t, l)
		})
	}
}

func TestOutOfOrderTrack(t *testing.T) {
	l := NewLedger(Config{Shards: 2})
	for _, pn := range []uint64{8, 2, 6, 0, 4, 9, 1} {
		send(l, pn, 0, 1, 0)
	}
	requireSound(t, l)
	out := l.OnAck([]Range{{0, 5}}, nil)
	sameSet(t, ackedPNs(out), []uint64{0, 1, 2, 4}, "acked")
	requireSound(t, l)
}

func TestTrackDuplicate(t *testing.T) {
	l := NewLedger(Config{})
	send(l, 1, 0, 100, 0)
	mustPanic(t, "already tracked", func() { send(l, 1, 0, 50, 0) })
	// The duplicate's charge was released before the panic.
	eq(t, l.Flight(), int64(100), "flight after strict dup")
	requireSound(t, l)

	var logs []string
	nl := newLedger(Config{Check: true, Logf: func(f string, a ...any) { logs = append(logs, fmt.Sprintf(f, a...)) }})
	send(nl, 1, 0, 100, 0)
	send(nl, 1, 0, 50, 0)
	eq(t, nl.Violations(), uint64(1), "violations")
	eq(t, nl.Flight(), int64(100), "flight")
	eq(t, len(logs), 1, "logs")
	requireSound(t, nl)
}

func TestReleaseUnsent(t *testing.T) {
	l := NewLedger(Config{})
	l.Charge(300)
	l.Charge(200)
	l.ReleaseUnsent(7, 300)
	eq(t, l.Flight(), int64(200), "released once")
	l.Track(Sent{PN: 8, Size: 200})
	eq(t, l.Flight(), int64(200), "track keeps flight")
	// Strict: the PN is tracked → panic; the record is released exactly once.
	mustPanic(t, "is tracked", func() { l.ReleaseUnsent(8, 200) })
	eq(t, l.Flight(), int64(0), "released record")
	eq(t, l.Len(), 0, "len")
	eq(t, len(l.OnAck([]Range{{8, 8}}, nil)), 0, "ack after")
	requireSound(t, l)

	nl := newLedger(Config{Check: true})
	send(nl, 8, 0, 200, 0)
	nl.ReleaseUnsent(8, 200)
	eq(t, nl.Violations(), uint64(1), "violations")
	eq(t, nl.Flight(), int64(0), "flight")
	eq(t, nl.Underflows(), uint64(0), "underflows")
	requireSound(t, nl)
}

func TestUnderflow(t *testing.T) {
	l := NewLedger(Config{})
	mustPanic(t, "below zero", func() { l.ReleaseUnsent(1, 10) })

	var logs []string
	nl := newLedger(Config{Check: true, Logf: func(f string, a ...any) { logs = append(logs, fmt.Sprintf(f, a...)) }})
	nl.ReleaseUnsent(1, 10) // never charged
	eq(t, nl.Underflows(), uint64(2), "flight and pending underflow")
	eq(t, nl.Flight(), int64(-10), "not clamped")
	eq(t, len(logs), 2, "logged")
	nl.Charge(10)
	eq(t, nl.Flight(), int64(0), "recovers")
	requireSound(t, nl)
}

func TestDetectLost(t *testing.T) {
	base := func() *Ledger {
		l := NewLedger(Config{Shards: 4})
		for pn := uint64(0); pn < 10; pn++ {
			send(l, pn, pn%2, 100, int64(pn)*10) // sent at pn*10 ms
		}
		return l
	}
	for _, tc := range []struct {
		name      string
		p         LossParams
		lost      []uint64
		abandoned []uint64
		next      monotime.Time
	}{
		{"no largest", LossParams{Now: mt(1000), LossDelay: time.Millisecond}, nil, nil, 0},
		{"packet threshold", LossParams{Now: mt(95), LargestAcked: 9, HaveLargest: true, LossDelay: time.Second},
			[]uint64{0, 1, 2, 3, 4, 5, 6}, nil, mt(70) + monotime.Time(time.Second)},
		{"time threshold", LossParams{Now: mt(100), LargestAcked: 5, HaveLargest: true, PacketThreshold: 100, LossDelay: 75 * time.Millisecond},
			[]uint64{0, 1, 2}, nil, mt(30 + 75)},
		{"abandon at max sends", LossParams{Now: mt(95), LargestAcked: 3, HaveLargest: true, LossDelay: time.Second, MaxSends: 1},
			nil, []uint64{0}, mt(10) + monotime.Time(time.Second)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l := base()
			rs, arena, ab, next := l.DetectLost(tc.p, nil, nil, nil)
			eq(t, fmt.Sprint(resendPNs(rs)), fmt.Sprint(orEmpty(tc.lost)), "lost")
			eq(t, fmt.Sprint(abandonedPNs(ab)), fmt.Sprint(orEmpty(tc.abandoned)), "abandoned")
			eq(t, next, tc.next, "next loss time")
			for _, r := range rs {
				if !bytes.Equal(r.Payload, payloadFor(r.PN, 100)) {
					t.Fatalf("pn %d: payload mismatch", r.PN)
				}
			}
			_ = arena
			eq(t, l.Flight(), int64(100*(10-len(tc.abandoned))), "flight: resends stay charged")
			// Handed-out records are not handed out twice.
			rs2, _, _, _ := l.DetectLost(tc.p, nil, nil, nil)
			eq(t, len(rs2), 0, "second detect")
			requireSound(t, l)
		})
	}
}

func orEmpty(x []uint64) []uint64 {
	if x == nil {
		return []uint64{}
	}
	return x
}

func TestTakeOldestNewest(t *testing.T) {
	l := NewLedger(Config{Shards: 4})
	for pn := uint64(0); pn < 10; pn++ {
		send(l, pn, 0, 10, int64(pn))
	}
	rs, arena, ab := l.TakeOldest(3, 5, nil, nil, nil)
	eq(t, fmt.Sprint(resendPNs(rs)), "[0 1 2]", "oldest")
	eq(t, len(ab), 0, "abandoned")
	rs, arena, ab = l.TakeOldest(2, 5, rs[:0], arena[:0], ab)
	eq(t, len(ab), 0, "abandoned")
	eq(t, fmt.Sprint(resendPNs(rs)), "[3 4]", "oldest skips handed out")
	rs, _ = l.TakeNewest(rs[:0], arena[:0])
	eq(t, fmt.Sprint(resendPNs(rs)), "[9]", "newest")
	rs, _ = l.TakeNewest(rs[:0], nil)
	eq(t, fmt.Sprint(resendPNs(rs)), "[8]", "newest skips handed out")
	eq(t, l.OldestSentAt(), mt(5), "oldest sentAt skips handed out")

	// Refresh 0 → 20 and 1 → 21; then with maxSends 2 they are abandoned.
	eq(t, l.Refresh(0, 20, mt(100)), true, "refresh 0")
	eq(t, l.Refresh(1, 21, mt(101)), true, "refresh 1")
	l.ResendFailed(2)
	rs, _, ab = l.TakeOldest(10, 2, rs[:0], nil, nil)
	eq(t, fmt.Sprint(resendPNs(rs)), "[2 5 6 7]", "resent")
	eq(t, fmt.Sprint(abandonedPNs(ab)), "[20 21]", "abandoned")
	eq(t, l.Flight(), int64(80), "abandon released")
	rs, _ = l.TakeNewest(rs[:0], nil)
	eq(t, len(rs), 0, "all handed out")
	eq(t, l.OldestSentAt(), monotime.Time(0), "no idle record")
	requireSound(t, l)
}

func TestRefreshRekeys(t *testing.T) {
	l := NewLedger(Config{Shards: 8})
	send(l, 3, 7, 500, 1)
	rs, _, _ := l.TakeOldest(1, 0, nil, nil, nil)
	eq(t, len(rs), 1, "handed out")
	eq(t, l.Refresh(3, 12, mt(50)), true, "refresh") // shard 3 → shard 4
	requireSound(t, l)
	eq(t, len(l.OnAck([]Range{{3, 3}}, nil)), 0, "ack of superseded pn")
	eq(t, l.Flight(), int64(500), "still charged")
	out := l.OnAck([]Range{{12, 12}}, nil)
	eq(t, len(out), 1, "ack new pn")
	eq(t, out[0].Sends, 2, "sends")
	eq(t, out[0].SentAt, mt(50), "sentAt")
	eq(t, out[0].FirstSentAt, mt(1), "firstSentAt")
	eq(t, out[0].Stream, StreamID(7), "stream kept")
	eq(t, l.Flight(), int64(0), "released once")

	send(l, 20, 1, 5, 0)
	send(l, 21, 1, 5, 0)
	mustPanic(t, "already tracked", func() { l.Refresh(20, 21, mt(2)) })
	mustPanic(t, "equals old", func() { l.Refresh(20, 20, mt(2)) })
	requireSound(t, l)
}

func TestPayloadIsCopied(t *testing.T) {
	l := NewLedger(Config{})
	p := []byte("hello")
	l.Charge(5)
	l.Track(Sent{PN: 1, Size: 5, Payload: p})
	copy(p, "XXXXX") // caller reuses its buffer after Track
	rs, arena := l.TakeNewest(nil, make([]byte, 0, 64))
	eq(t, string(rs[0].Payload), "hello", "record kept its own copy")
	copy(arena, "YYYYY") // caller scribbles on its arena
	l.ResendFailed(1)
	rs, _ = l.TakeNewest(nil, nil)
	eq(t, string(rs[0].Payload), "hello", "resend payload is a copy")
	big := bytes.Repeat([]byte{1}, 3000) // larger than a pooled buffer: no panic
	l.Charge(3000)
	l.Track(Sent{PN: 2, Size: 3000, Payload: big})
	rs, _ = l.TakeNewest(nil, nil)
	eq(t, len(rs[0].Payload), 3000, "big payload")
	requireSound(t, l)
}

func TestClose(t *testing.T) {
	l := NewLedger(Config{})
	for pn := uint64(0); pn < 50; pn++ {
		send(l, pn, pn%4, 10, 0)
	}
	rs, _, _ := l.TakeOldest(3, 0, nil, nil, nil)
	l.Charge(77) // a send in progress while the connection closes
	eq(t, l.Close(), 500, "close releases tracked")
	eq(t, l.Flight(), int64(77), "pending charge stays")
	l.Track(Sent{PN: 60, Size: 77})
	eq(t, l.Flight(), int64(0), "track after close releases")
	eq(t, l.Len(), 0, "len")
	for _, r := range rs {
		eq(t, l.Refresh(r.PN, r.PN+100, mt(1)), false, "refresh after close")
	}
	eq(t, l.Close(), 0, "close idempotent")
	requireSound(t, l)
}
