package blast

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/flightline/flightline/bench/internal/peer"
)

// chunk is a plain blast's full payload.
const chunk = datagramLen - headerLen

// datagram builds data datagram seq of a run of s the way the client does
// (sealed when sl is not nil).
func datagram(s *peer.Spec, sl *sealer, seq int64) []byte {
	p := newPlan(s.Bytes, sl.overhead())
	n := p.payload(seq)
	b := make([]byte, headerLen+n, datagramLen)
	putHeader(b, kindData, s.Seed, uint64(seq))
	copy(b[headerLen:], peer.NewPattern(s.Seed).Window(0, p.offset(seq), n))
	return sl.seal(b, uint64(seq), n)
}

// sealers returns the plain and the sealed variant of a run with seed.
func sealers(t *testing.T, seed uint64) map[string]*sealer {
	sl, err := newSealer(seed)
	require.NoError(t, err)
	return map[string]*sealer{"plain": nil, "sealed": sl}
}

func TestPlan(t *testing.T) {
	p := newPlan(3*chunk+5, 0)
	require.EqualValues(t, 4, p.count)
	require.Equal(t, chunk, p.payload(0))
	require.Equal(t, 5, p.payload(3))
	require.EqualValues(t, 1, newPlan(1, 0).count)
	require.EqualValues(t, 2, newPlan(2*chunk, 0).count)
	require.Equal(t, chunk, newPlan(2*chunk, 0).payload(1))
	sealed := newPlan(2*chunk, 16)
	require.EqualValues(t, chunk-16, sealed.chunk)
	require.EqualValues(t, 3, sealed.count, "the tag takes room from the payload")
	require.EqualValues(t, 2*(chunk-16), sealed.offset(2))
}

func TestReceiverCountsVerifiedDatagrams(t *testing.T) {
	for name, sl := range sealers(t, 3) {
		t.Run(name, func(t *testing.T) { testReceiverCounts(t, sl) })
	}
}

func testReceiverCounts(t *testing.T, sl *sealer) {
	s := &peer.Spec{Bytes: 2*chunk + 100, Seed: 3}
	r := newReceiver(s, sl)
	for seq := range int64(3) {
		k, v := r.handle(datagram(s, sl, seq))
		require.Equal(t, kindData, k)
		require.EqualValues(t, seq, v)
	}
	require.EqualValues(t, 3, r.datagrams)
	require.EqualValues(t, s.Bytes, r.bytes)
	require.NoError(t, r.err())

	k, _ := r.handle(datagram(s, sl, 1))
	require.Equal(t, kindData, k)
	require.EqualValues(t, 3, r.datagrams, "a duplicate is not counted twice")
	require.EqualValues(t, 1, r.dups)

	k, v := r.handle(control(kindEnd, s.Seed, 3))
	require.Equal(t, kindEnd, k)
	require.EqualValues(t, 3, v)
	k, _ = r.handle(control(kindHello, s.Seed, 0))
	require.Equal(t, kindHello, k)
	require.NoError(t, r.err())
}

func TestReceiverCountsCorruption(t *testing.T) {
	for name, sl := range sealers(t, 5) {
		t.Run(name, func(t *testing.T) { testReceiverCorruption(t, sl) })
	}
}

func testReceiverCorruption(t *testing.T, sl *sealer) {
	s := &peer.Spec{Bytes: 10 * chunk, Seed: 5}
	for _, c := range []struct {
		name   string
		mangle func([]byte) []byte
	}{
		{"flipped payload byte", func(b []byte) []byte { b[headerLen+700] ^= 0x20; return b }},
		{"flipped last byte", func(b []byte) []byte { b[len(b)-1] ^= 1; return b }},
		{"other run's seed", func(b []byte) []byte { b[7] ^= 1; return b }},
		{"unknown kind", func(b []byte) []byte { b[0] ^= 1; return b }},
		{"sequence beyond the run", func(b []byte) []byte { b[8] = 0x7f; return b }},
		{"wrong sequence number", func(b []byte) []byte { b[15]++; return b }},
		{"truncated", func(b []byte) []byte { return b[:len(b)-1] }},
		{"short header", func(b []byte) []byte { return b[:headerLen-1] }},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := newReceiver(s, sl)
			k, _ := r.handle(c.mangle(datagram(s, sl, 4)))
			require.Equal(t, kindInvalid, k)
			require.EqualValues(t, 1, r.corrupt)
			require.Zero(t, r.datagrams)
			require.Zero(t, r.bytes)
			require.ErrorContains(t, r.err(), "1 corrupt datagrams")

			// The intact datagram still counts afterwards.
			k, _ = r.handle(datagram(s, sl, 4))
			require.Equal(t, kindData, k)
			require.EqualValues(t, 1, r.datagrams)
		})
	}
	r := newReceiver(s, sl)
	k, _ := r.handle(append(control(kindEnd, s.Seed, 1), 0))
	require.Equal(t, kindInvalid, k, "a control datagram of the wrong length")
	k, _ = r.handle(control(kindReport, s.Seed, 1))
	require.Equal(t, kindInvalid, k, "a report is not something a client sends")
	require.EqualValues(t, 2, r.corrupt)
}

func TestReportRoundTrip(t *testing.T) {
	b := make([]byte, reportLen)
	putHeader(b, kindReport, 9, 123)
	putUint64(b[headerLen:], 456)
	d, n, ok := parseReport(b, 9)
	require.True(t, ok)
	require.EqualValues(t, 123, d)
	require.EqualValues(t, 456, n)
	_, _, ok = parseReport(b, 8)
	require.False(t, ok, "another run's report")
	_, _, ok = parseReport(b[:headerLen], 9)
	require.False(t, ok, "short report")
}
