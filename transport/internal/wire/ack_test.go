package wire

import (
	"math/rand/v2"
	"testing"
)

func TestAckRanges(t *testing.T) {
	tests := []struct {
		name   string
		ranges []AckRange
		// wire is the expected encoding after the type byte and the ack
		// delay (0): largest, range count, first range, (gap, len)...
		wire []byte
	}{
		{"single-packet-0", []AckRange{{0, 0}}, []byte{0, 0, 0}},
		{"one-range", []AckRange{{5, 10}}, []byte{10, 0, 5}},
		// gap 0: exactly one packet (7) missing between ranges.
		{"gap-0", []AckRange{{8, 10}, {5, 6}}, []byte{10, 1, 2, 0, 1}},
		// gap 1: two packets (6, 7) missing.
		{"gap-1", []AckRange{{8, 10}, {5, 5}}, []byte{10, 1, 2, 1, 0}},
		{"down-to-zero", []AckRange{{4, 4}, {2, 2}, {0, 0}}, []byte{4, 2, 0, 0, 0, 0, 0}},
		{"many", []AckRange{{50, 60}, {40, 45}, {20, 30}, {10, 10}, {1, 3}},
			[]byte{60, 4, 10, 3, 5, 8, 10, 8, 0, 5, 2}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := AppendAck(nil, tt.ranges, 0)
			equal(t, AckLen(tt.ranges, 0), len(b))
			// The expected bytes are all single-byte varints; splice in the delay.
			want := append([]byte{byte(FrameAck), tt.wire[0], 0}, tt.wire[1:]...)
			equal(t, want, b)
			got, err := parseAll(b)
			noErr(t, err)
			equal(t, []Frame{{Type: FrameAck, Ranges: tt.ranges}}, got)
		})
	}
}

// descendingRanges builds n valid ranges starting at largest, with gaps and
// lengths drawn from rng.
func descendingRanges(rng *rand.Rand, largest uint64, n int) []AckRange {
	rs := make([]AckRange, 0, n)
	hi := largest
	for range n {
		lo := hi - rng.Uint64N(min(hi, 1000)+1)
		rs = append(rs, AckRange{lo, hi})
		if lo < 2+1000 {
			break
		}
		hi = lo - 2 - rng.Uint64N(1000)
	}
	return rs
}

func TestAckRangeLimit(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	rs := descendingRanges(rng, 1<<40, MaxAckRanges+10)
	equal(t, MaxAckRanges+10, len(rs))

	// Exactly MaxAckRanges round-trips.
	b := AppendAck(nil, rs[:MaxAckRanges], 1000)
	got, err := parseAll(b)
	noErr(t, err)
	equal(t, []Frame{{Type: FrameAck, AckDelay: 1000, Ranges: rs[:MaxAckRanges]}}, got)

	// More are clipped to the MaxAckRanges largest.
	b2 := AppendAck(nil, rs, 1000)
	equal(t, b, b2)
	equal(t, len(b), AckLen(rs, 1000))

	// A peer sending MaxAckRanges+1 ranges is rejected.
	bad := []byte{byte(FrameAck)}
	bad = AppendVarint(bad, 1000)
	bad = AppendVarint(bad, 0)
	bad = AppendVarint(bad, MaxAckRanges) // range count: 1 + 64 ranges
	bad = AppendVarint(bad, 0)
	for range MaxAckRanges {
		bad = append(bad, 0, 0)
	}
	_, err = parseAll(bad)
	errIs(t, err, ErrMalformed)
	// A huge count is rejected before any range is read.
	_, err = parseAll(AppendVarint([]byte{byte(FrameAck), 5, 0}, MaxVarint))
	errIs(t, err, ErrMalformed)
}

func TestAckUnderflow(t *testing.T) {
	tests := []struct {
		name string
		in   []byte // after the type byte
	}{
		{"first-range>largest", []byte{5, 0, 0, 6}},
		{"gap-below-zero", []byte{5, 0, 1, 2, 4, 0}},                // smallest 3, gap 2 -> 3-2-2 < 0
		{"gap-to-minus-one", []byte{5, 0, 1, 4, 0, 0}},              // smallest 1 -> 1-0-2 < 0
		{"len-below-zero", []byte{10, 0, 1, 8, 0, 1}},               // next largest 6, len 7
		{"second-range-underflow", []byte{10, 0, 2, 0, 0, 0, 3, 5}}, // 10..10, 8..8, then 8-3-2=3, len 5
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := parseAll(append([]byte{byte(FrameAck)}, tt.in...))
			errIs(t, err, ErrMalformed)
		})
	}
	// Boundary: ranges reaching exactly packet 0 are fine.
	got, err := parseAll([]byte{byte(FrameAck), 10, 0, 1, 0, 0, 2}) // 10-0-2=8, len 2 -> 6..8
	noErr(t, err)
	equal(t, []AckRange{{10, 10}, {6, 8}}, got[0].Ranges)
	got, err = parseAll([]byte{byte(FrameAck), 10, 0, 1, 0, 8, 0}) // 10-8-2=0, len 0 -> 0..0
	noErr(t, err)
	equal(t, []AckRange{{10, 10}, {0, 0}}, got[0].Ranges)
}

func TestAppendAckRejectsBadRanges(t *testing.T) {
	tests := []struct {
		name   string
		ranges []AckRange
	}{
		{"empty", nil},
		{"inverted-first", []AckRange{{5, 4}}},
		{"inverted-second", []AckRange{{10, 10}, {5, 4}}},
		{"adjacent", []AckRange{{5, 10}, {2, 4}}},
		{"overlapping", []AckRange{{5, 10}, {2, 6}}},
		{"ascending", []AckRange{{1, 1}, {5, 5}}},
		{"below-two", []AckRange{{1, 1}, {0, 0}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			panics(t, func() { AppendAck(nil, tt.ranges, 0) })
			panics(t, func() { AckLen(tt.ranges, 0) })
		})
	}
}

func TestAckRandomRoundTrip(t *testing.T) {
	rng := rand.New(rand.NewPCG(42, 7))
	for i := range 2000 {
		largest := rng.Uint64N(MaxVarint + 1)
		rs := descendingRanges(rng, largest, 1+rng.IntN(MaxAckRanges))
		delay := rng.Uint64N(1 << (rng.IntN(62) + 1))
		b := AppendAck(nil, rs, delay)
		equal(t, AckLen(rs, delay), len(b), "iteration %d", i)
		got, err := parseAll(b)
		noErr(t, err, "iteration %d", i)
		equal(t, []Frame{{Type: FrameAck, AckDelay: delay, Ranges: rs}}, got, "iteration %d", i)
	}
}
