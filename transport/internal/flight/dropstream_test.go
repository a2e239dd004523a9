package flight

import (
	"testing"
	"time"
)

// These tests pin the stream-abort release path (freenet #4345/#4393) and its
// exactly-once property. Every ledger runs with Check and Strict, so any
// double release panics inside the operation that commits it.

const sA, sB StreamID = 1, 2

func lossAll(now int64, largest uint64) LossParams {
	return LossParams{Now: mt(now), LargestAcked: largest, HaveLargest: true, PacketThreshold: 1, LossDelay: time.Millisecond}
}

func TestDropStreamExactBytes(t *testing.T) {
	l := NewLedger(Config{})
	want := 0
	for pn := uint64(0); pn < 40; pn++ {
		size := 1000 + int(pn)*7
		s := sA
		if pn%3 == 0 {
			s = sB
		}
		if s == sA {
			want += size
		}
		send(l, pn, s, size, 0)
	}
	before := l.Flight()
	eq(t, l.StreamBytes(sA), want, "stream bytes")
	eq(t, l.DropStream(sA), want, "dropped bytes")
	eq(t, l.Flight(), before-int64(want), "flight")
	eq(t, l.StreamBytes(sA), 0, "stream bytes after")
	requireSound(t, l)
}

func TestDropStreamThenAckIsNoop(t *testing.T) {
	l := NewLedger(Config{})
	for pn := uint64(0); pn < 10; pn++ {
		send(l, pn, sA, 100, 0)
	}
	eq(t, l.DropStream(sA), 1000, "dropped")
	eq(t, l.Flight(), int64(0), "flight")
	eq(t, len(l.OnAck([]Range{{0, 9}}, nil)), 0, "ack after drop returns nothing")
	eq(t, l.Flight(), int64(0), "flight unchanged by ack")
	requireSound(t, l)
}

func TestDropStreamThenAbandonIsNoop(t *testing.T) {
	l := NewLedger(Config{})
	for pn := uint64(0); pn < 10; pn++ {
		send(l, pn, sA, 100, 0)
	}
	l.DropStream(sA)
	rs, _, ab, next := l.DetectLost(LossParams{Now: mt(1e6), LargestAcked: 100, HaveLargest: true, MaxSends: 1}, nil, nil, nil)
	eq(t, len(rs)+len(ab), 0, "detect lost after drop")
	eq(t, next, mt(0), "no loss timer")
	rs, _, ab = l.TakeOldest(10, 1, nil, nil, nil)
	eq(t, len(rs)+len(ab), 0, "take oldest after drop")
	rs, _ = l.TakeNewest(nil, nil)
	eq(t, len(rs), 0, "take newest after drop")
	eq(t, l.Flight(), int64(0), "flight")
	requireSound(t, l)
}

func TestDropStreamInterleaved(t *testing.T) {
	l := NewLedger(Config{})
	bBytes := 0
	for pn := uint64(0); pn < 200; pn++ {
		if pn%2 == 0 {
			send(l, pn, sA, 1200, 0)
		} else {
			send(l, pn, sB, 900+int(pn), 0)
			bBytes += 900 + int(pn)
		}
	}
	eq(t, l.DropStream(sA), 100*1200, "A dropped")
	eq(t, l.Flight(), int64(bBytes), "B fully charged")
	eq(t, l.StreamBytes(sB), bBytes, "B bytes")
	credited := 0
	for lo := uint64(0); lo < 200; lo += 10 { // ACKs in pieces, covering A's PNs too
		for _, a := range l.OnAck([]Range{{lo, lo + 9}}, nil) {
			eq(t, a.Stream, sB, "only B is acked")
			credited += a.Size
		}
	}
	eq(t, credited, bBytes, "B creditable")
	eq(t, l.Flight(), int64(0), "flight reaches exactly 0")
	requireSound(t, l)
}

func TestDropStreamControlUntouched(t *testing.T) {
	l := NewLedger(Config{})
	send(l, 0, Control, 50, 0)
	send(l, 1, sA, 100, 0)
	send(l, 2, Control, 60, 0)
	eq(t, l.DropStream(Control), 0, "control refused")
	eq(t, l.DropStream(sA), 100, "A")
	eq(t, l.StreamBytes(Control), 110, "control bytes")
	eq(t, l.Len(), 2, "control records kept")
	eq(t, len(l.OnAck([]Range{{0, 2}}, nil)), 2, "control acked")
	eq(t, l.Flight(), int64(0), "flight")
	requireSound(t, l)
}

func TestDropStreamUnknownAndIdempotent(t *testing.T) {
	l := NewLedger(Config{})
	eq(t, l.DropStream(99), 0, "empty ledger")
	send(l, 0, sA, 100, 0)
	eq(t, l.DropStream(99), 0, "unknown stream")
	eq(t, l.DropStream(sA), 100, "first")
	eq(t, l.DropStream(sA), 0, "second")
	send(l, 1, sB, 10, 0)
	l.OnAck([]Range{{1, 1}}, nil)
	eq(t, l.DropStream(sB), 0, "drained by acks")
	eq(t, l.Flight(), int64(0), "flight")
	requireSound(t, l)
}

func TestDropStreamBoundaries(t *testing.T) {
	for _, tc := range []struct {
		name    string
		packets int
		size    int
	}{
		{"one packet", 1, 1200},
		{"500 packets", 500, 1452},
		{"zero-length packet", 1, 0},
		{"zero-length packets among others", 30, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l := NewLedger(Config{})
			send(l, 0, Control, 40, 0)
			for i := 0; i < tc.packets; i++ {
				send(l, uint64(i+1), sA, tc.size, 0)
			}
			eq(t, l.Len(), tc.packets+1, "len")
			eq(t, l.DropStream(sA), tc.packets*tc.size, "dropped bytes")
			eq(t, l.Len(), 1, "only control left")
			eq(t, l.Flight(), int64(40), "flight")
			requireSound(t, l)
		})
	}
}

// A record that is both tracked and handed out for resend (the freenet
// "pending receipt + resend queue" state) is swept, released once.
func TestDropStreamSweepsHandedOut(t *testing.T) {
	for _, how := range []string{"TakeOldest", "DetectLost", "TakeNewest"} {
		t.Run(how, func(t *testing.T) {
			l := NewLedger(Config{})
			for pn := uint64(0); pn < 8; pn++ {
				send(l, pn, sA, 100, 0)
			}
			send(l, 8, sB, 100, 0)
			var rs []Resend
			switch how {
			case "TakeOldest":
				rs, _, _ = l.TakeOldest(8, 0, nil, nil, nil)
			case "DetectLost":
				rs, _, _, _ = l.DetectLost(lossAll(10, 8), nil, nil, nil)
			case "TakeNewest":
				l.OnAck([]Range{{8, 8}}, nil)
				rs, _ = l.TakeNewest(nil, nil)
			}
			if len(rs) == 0 {
				t.Fatal("nothing handed out")
			}
			// The resend gap: handed out, not yet refreshed, stream aborts.
			eq(t, l.DropStream(sA), 800, "released once, including handed-out records")
			for i, r := range rs {
				eq(t, l.Refresh(r.PN, uint64(100+i), mt(20)), false, "refresh after drop")
				l.ResendFailed(r.PN) // also a no-op
			}
			eq(t, l.StreamBytes(sA), 0, "nothing resurrected")
			if how != "TakeNewest" {
				eq(t, l.Len(), 1, "B only")
				eq(t, l.Flight(), int64(100), "B only")
			} else {
				eq(t, l.Len(), 0, "all released")
				eq(t, l.Flight(), int64(0), "all released")
			}
			requireSound(t, l)
		})
	}
}

func TestDropStreamAfterAbandon(t *testing.T) {
	l := NewLedger(Config{})
	for pn := uint64(0); pn < 4; pn++ {
		send(l, pn, sA, 100, 0)
	}
	_, _, ab := l.TakeOldest(2, 1, nil, nil, nil) // Sends=1 >= MaxSends=1: abandoned
	eq(t, len(ab), 2, "abandoned")
	eq(t, l.Flight(), int64(200), "abandon released")
	eq(t, l.DropStream(sA), 200, "drop releases only the rest")
	eq(t, l.Flight(), int64(0), "flight")
	requireSound(t, l)
}

// The mirror of the resend gap (the #4393 review's blocking finding): the
// resend's Refresh arrives after DropStream removed the record. It must not
// re-insert it; a re-inserted record would be released a second time by a
// later ACK or abandon.
func TestRefreshAfterDropStreamDoesNotResurrect(t *testing.T) {
	for _, how := range []string{"TakeOldest", "DetectLost"} {
		t.Run(how, func(t *testing.T) {
			l := NewLedger(Config{})
			send(l, 0, sA, 700, 0)
			send(l, 1, sA, 300, 0)
			send(l, 2, Control, 50, 0)
			var rs []Resend
			if how == "TakeOldest" {
				rs, _, _ = l.TakeOldest(2, 0, nil, nil, nil)
			} else {
				rs, _, _, _ = l.DetectLost(lossAll(10, 2), nil, nil, nil)
			}
			eq(t, len(rs), 2, "handed out")
			eq(t, l.DropStream(sA), 1000, "dropped")
			newPN := uint64(1000)
			for _, r := range rs {
				// The resend was sent under newPN; the sender now refreshes.
				eq(t, l.Refresh(r.PN, newPN, mt(20)), false, "refresh reports the record is gone")
				newPN++
			}
			eq(t, l.Len(), 1, "no record reappeared")
			eq(t, l.StreamBytes(sA), 0, "stream bytes")
			eq(t, l.StreamBytes(Control), 50, "control bytes")
			eq(t, l.Flight(), int64(50), "flight")
			// Later ACKs of the old and the new PNs release nothing.
			eq(t, len(l.OnAck([]Range{{1000, 1001}, {0, 1}}, nil)), 0, "acks")
			eq(t, l.Flight(), int64(50), "flight after acks")
			// Many RTO rounds and loss scans hand out or abandon nothing of A.
			now := int64(30)
			for round := 0; round < 50; round++ {
				now += 1000
				rs, _, ab := l.TakeOldest(4, 2, nil, nil, nil)
				for _, r := range rs {
					eq(t, r.Stream, Control, "only control handed out")
					eq(t, l.Refresh(r.PN, newPN, mt(now)), true, "control refresh")
					newPN++
				}
				for _, a := range ab {
					eq(t, a.Stream, Control, "only control abandoned")
				}
				rs, _, ab, _ = l.DetectLost(lossAll(now, newPN+10), nil, nil, nil)
				for _, r := range rs {
					eq(t, r.Stream, Control, "only control lost")
					l.ResendFailed(r.PN)
				}
				for _, a := range ab {
					eq(t, a.Stream, Control, "only control abandoned")
				}
			}
			eq(t, l.Len(), 0, "control abandoned eventually")
			eq(t, l.Flight(), int64(0), "flight exactly 0")
			requireSound(t, l)
		})
	}
}
