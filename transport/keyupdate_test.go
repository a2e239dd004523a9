package transport

import (
	"testing"
	"time"

	"github.com/flightline/flightline/transport/internal/handshake"
	"github.com/flightline/flightline/transport/internal/monotime"
	"github.com/flightline/flightline/transport/internal/wire"
	"github.com/stretchr/testify/require"
)

// keyPair returns the packet keys of two ends of one session.
func keyPair(t *testing.T, suite Suite, l keyLimits) (a, b *packetKeys) {
	t.Helper()
	sa, sb, err := handshake.NewSessionPair(suite)
	require.NoError(t, err)
	return newPacketKeys(sa, l), newPacketKeys(sb, l)
}

// sealPN runs from's send step (with the peer's acknowledgement state) and
// seals a one-byte packet pn.
func sealPN(t *testing.T, from *packetKeys, pn, largestAcked uint64, haveAcked bool) []byte {
	t.Helper()
	ok, _ := from.ready(largestAcked, haveAcked)
	require.True(t, ok)
	return from.seal(nil, 7, pn, []byte{byte(pn)})
}

// deliver opens pkt at to and returns the error.
func deliver(t *testing.T, to *packetKeys, now monotime.Time, pkt []byte) error {
	t.Helper()
	hdr, err := wire.ParseDataHeader(pkt)
	require.NoError(t, err)
	pkt = append([]byte(nil), pkt...)
	plain, err := to.open(now, hdr, pkt, func() time.Duration { return 10 * time.Millisecond })
	if err == nil {
		require.Equal(t, []byte{byte(hdr.PN)}, plain)
	}
	return err
}

func phaseOf(pkt []byte) uint8 { return pkt[0] & 1 }

// The key update state machine, driven packet by packet with explicit
// times: initiation after the interval once confirmed, the peer following
// on the first authenticated packet of the next phase, reordered packets of
// the previous phase opened with the old key until it is discarded 3 PTO
// later, and no second update before the first is confirmed.
func TestPacketKeysUpdate(t *testing.T) {
	for _, suite := range []Suite{SuiteAESGCM, SuiteChaCha20Poly1305} {
		t.Run(suite.String(), func(t *testing.T) {
			a, b := keyPair(t, suite, keyLimits{interval: 3, integrity: 100})
			now := monotime.Time(1e9)

			// Generation 0: pn 0..2; pn 2 is held back (reordered).
			for pn := range uint64(2) {
				pkt := sealPN(t, a, pn, 0, false)
				require.Equal(t, uint8(0), phaseOf(pkt))
				require.NoError(t, deliver(t, b, now, pkt))
			}
			held := sealPN(t, a, 2, 0, false)

			// Interval reached but nothing acknowledged: no update, and a
			// PING is asked for once.
			ok, ping := a.ready(0, false)
			require.True(t, ok)
			require.True(t, ping)
			_, ping = a.ready(0, false)
			require.False(t, ping, "PING asked once per generation")
			require.Zero(t, a.sendGen.Load())

			// pn 0 acknowledged: a initiates generation 1.
			pkt3 := sealPN(t, a, 3, 0, true)
			require.Equal(t, uint8(1), phaseOf(pkt3))
			require.EqualValues(t, 1, a.sendGen.Load())
			require.EqualValues(t, 1, a.initiated.Load())

			// b authenticates pn 3 with the next key and follows.
			require.NoError(t, deliver(t, b, now, pkt3))
			require.EqualValues(t, 1, b.peerGen.Load())
			// The held generation-0 packet opens with the previous key.
			require.NoError(t, deliver(t, b, now, held))
			require.EqualValues(t, 1, b.oldKeyOpens.Load())
			bpkt := sealPN(t, b, 0, 0, false)
			require.Equal(t, uint8(1), phaseOf(bpkt), "b follows the update")
			require.EqualValues(t, 1, b.sendGen.Load())
			require.Zero(t, b.initiated.Load())

			// a's generation 1 sealed the interval (pn 3..5), but the only
			// acknowledgement is for generation 0 and b's generation-1
			// packet has not arrived: no second update.
			sealPN(t, a, 4, 2, true)
			held6 := sealPN(t, a, 5, 2, true)
			pkt := sealPN(t, a, 6, 2, true)
			require.EqualValues(t, 1, a.sendGen.Load(), "unconfirmed update: no second one")
			require.Equal(t, uint8(1), phaseOf(pkt))
			// An ACK of pn 3 alone is not enough while a has not
			// authenticated a generation-1 packet from b.
			sealPN(t, a, 7, 3, true)
			require.EqualValues(t, 1, a.sendGen.Load())
			require.NoError(t, deliver(t, a, now, bpkt))
			require.EqualValues(t, 1, a.peerGen.Load())
			pkt8 := sealPN(t, a, 8, 3, true)
			require.Equal(t, uint8(0), phaseOf(pkt8), "generation 2 has phase 0 again")
			require.EqualValues(t, 2, a.sendGen.Load())

			// b: generation 2 (phase 0, number above its generation-1
			// packets) opens with the next key; the held generation-1
			// packet (phase 1, lower number) with the previous one.
			now = now.Add(time.Millisecond)
			require.NoError(t, deliver(t, b, now, pkt8))
			require.EqualValues(t, 2, b.peerGen.Load())
			require.NoError(t, deliver(t, b, now, held6))
			require.EqualValues(t, 2, b.oldKeyOpens.Load())

			// 3 PTO (PTO = 10 ms here) later the previous key is gone: a
			// late generation-1 packet is dropped unopened, which is not an
			// authentication failure.
			late := sealPN(t, a, 9, 3, true) // generation 2, fine
			require.NoError(t, deliver(t, b, now, late))
			oldLate := append([]byte(nil), pkt...) // pn 6, generation 1
			require.ErrorIs(t, deliver(t, b, now.Add(31*time.Millisecond), oldLate), errKeyDiscarded)
			require.Zero(t, b.failures.Load())
			require.Zero(t, a.failures.Load())
		})
	}
}

// A packet of the next phase that fails authentication is a counted failure
// and changes nothing: the next key stays the next key, and the real update
// that follows still opens.
func TestPacketKeysForgedNextPhaseChangesNothing(t *testing.T) {
	a, b := keyPair(t, SuiteAESGCM, keyLimits{interval: 2, integrity: 100})
	now := monotime.Time(1e9)
	require.NoError(t, deliver(t, b, now, sealPN(t, a, 0, 0, false)))

	// The current key's packet with the phase bit flipped (so it is tried
	// with the next key), and garbage under a phase-1 header.
	flipped := sealPN(t, a, 1, 0, false)
	flipped[0] ^= 1
	require.ErrorIs(t, deliver(t, b, now, flipped), handshake.ErrDecrypt)
	garbage := wire.AppendDataHeader(nil, wire.DataHeader{ConnID: 7, PN: 50, KeyPhase: 1})
	garbage = append(garbage, make([]byte, 40)...)
	require.ErrorIs(t, deliver(t, b, now, garbage), handshake.ErrDecrypt)
	require.EqualValues(t, 2, b.failures.Load())
	require.Zero(t, b.peerGen.Load(), "an unauthenticated packet rotates nothing")
	_, ping := b.ready(0, false)
	require.False(t, ping)
	require.Zero(t, b.sendGen.Load(), "nor makes the receiver follow")

	pkt := sealPN(t, a, 2, 0, true) // interval reached, pn 0 acknowledged
	require.Equal(t, uint8(1), phaseOf(pkt))
	require.NoError(t, deliver(t, b, now, pkt))
	require.EqualValues(t, 1, b.peerGen.Load())
	require.EqualValues(t, 2, b.failures.Load())
}

// The integrity limit counts failures across keys and trips when it is
// exceeded; the confidentiality limit stops sealing with one packet left
// for CONNECTION_CLOSE.
func TestPacketKeysLimits(t *testing.T) {
	a, b := keyPair(t, SuiteAESGCM, keyLimits{interval: 1 << 40, confidentiality: 5, integrity: 2})
	now := monotime.Time(1e9)
	for pn := range uint64(4) {
		ok, _ := a.ready(0, false)
		require.True(t, ok, "pn %d", pn)
		pkt := a.seal(nil, 7, pn, []byte{byte(pn)})
		require.NoError(t, deliver(t, b, now, pkt))
	}
	ok, _ := a.ready(0, false)
	require.False(t, ok, "4 packets sealed: the 5th is the CONNECTION_CLOSE")

	bad := a.seal(nil, 7, 4, []byte{4})
	bad[len(bad)-1] ^= 1
	require.ErrorIs(t, deliver(t, b, now, bad), handshake.ErrDecrypt)
	require.ErrorIs(t, deliver(t, b, now, bad), handshake.ErrDecrypt)
	require.ErrorIs(t, deliver(t, b, now, bad), errIntegrityLimit, "the third failure exceeds a limit of 2")
}

// The defaults follow RFC 9001 §6.6.
func TestDefaultKeyLimits(t *testing.T) {
	cfg := mustPopulate(t)
	require.Equal(t, DefaultKeyUpdateInterval, cfg.KeyUpdateInterval)
	g := cfg.keyLimits(SuiteAESGCM)
	require.Equal(t, keyLimits{interval: 1 << 20, confidentiality: 1 << 23, integrity: 1 << 52}, g)
	c := cfg.keyLimits(SuiteChaCha20Poly1305)
	require.Equal(t, keyLimits{interval: 1 << 20, confidentiality: 0, integrity: 1 << 36}, c)
	_, err := (&Config{KeyUpdateInterval: MaxKeyUpdateInterval + 1}).populate()
	require.Error(t, err)
	_, err = (&Config{KeyUpdateInterval: -1}).populate()
	require.Error(t, err)
}

// A peer that updates a second time before this side sent anything under
// the first cannot have had the first confirmed: the packet is refused
// (errUpdateTooSoon, which closes the connection) and no key moves. Once
// this side has sent a packet of the new generation, the next update is
// accepted.
func TestPacketKeysSecondUpdateTooSoon(t *testing.T) {
	a, b := keyPair(t, SuiteAESGCM, keyLimits{interval: 1 << 40, integrity: 100})
	now := monotime.Time(1e9)
	a.stepSend()
	gen1 := a.seal(nil, 7, 10, []byte{10})
	a.stepSend()
	gen2 := a.seal(nil, 7, 11, []byte{11})
	require.NoError(t, deliver(t, b, now, gen1))
	require.EqualValues(t, 1, b.peerGen.Load())
	require.ErrorIs(t, deliver(t, b, now, gen2), errUpdateTooSoon)
	require.EqualValues(t, 1, b.peerGen.Load(), "refused: no key moved")

	sealPN(t, b, 0, 0, false) // b sends under generation 1 (it follows)
	require.NoError(t, deliver(t, b, now, gen2))
	require.EqualValues(t, 2, b.peerGen.Load())
}

// FuzzPacketKeysOpen feeds arbitrary datagrams (seeded with well-formed
// packets of several generations, bytes flipped) to a receiver in the
// middle of its key schedule (current, previous and next keys live):
// nothing panics, and a packet that does not authenticate moves no key.
// `make fuzz` runs it; the seeds run in `make test`.
func FuzzPacketKeysOpen(f *testing.F) {
	sa, _, err := newTestSessions()
	if err != nil {
		f.Fatal(err)
	}
	a := newPacketKeys(sa, keyLimits{interval: 1 << 40, integrity: 1 << 40})
	for gen := range 3 {
		if gen > 0 {
			a.stepSend()
		}
		for _, pn := range []uint64{uint64(gen) * 100, uint64(gen)*100 + 1} {
			f.Add(a.seal(nil, 7, pn, []byte("seed payload")), uint8(0))
			f.Add(a.seal(nil, 7, pn+50, []byte("seed payload")), uint8(17))
		}
	}
	f.Add([]byte{5}, uint8(0))
	f.Fuzz(func(t *testing.T, pkt []byte, flip uint8) {
		// A fresh pair each time, with the receiver at generation 1 (one
		// update behind it, so current, previous and next keys all exist).
		sa, sb, err := newTestSessions()
		if err != nil {
			t.Fatal(err)
		}
		snd, rcv := newPacketKeys(sa, keyLimits{interval: 1 << 40, integrity: 1 << 40}), newPacketKeys(sb, keyLimits{interval: 1 << 40, integrity: 1 << 40})
		now := monotime.Time(1e9)
		pto := func() time.Duration { return time.Second }
		snd.stepSend()
		first := snd.seal(nil, 7, 100, []byte{1})
		hdr, _ := wire.ParseDataHeader(first)
		if _, err := rcv.open(now, hdr, first, pto); err != nil {
			t.Fatal(err)
		}
		if len(pkt) > 0 {
			pkt[int(flip)%len(pkt)] ^= flip
		}
		h, err := wire.ParseDataHeader(pkt)
		if err != nil || len(pkt) < wire.DataHeaderLen+16 {
			return
		}
		cur, next, prev, gen := rcv.cur, rcv.next, rcv.prev, rcv.peerGen.Load()
		if _, err := rcv.open(now, h, append([]byte(nil), pkt...), pto); err != nil {
			if rcv.cur != cur || rcv.next != next || rcv.prev != prev || rcv.peerGen.Load() != gen {
				t.Fatalf("a packet that failed (%v) moved the keys", err)
			}
		}
	})
}

// newTestSessions is handshake.NewSessionPair for AES-GCM.
func newTestSessions() (*handshake.Session, *handshake.Session, error) {
	return handshake.NewSessionPair(SuiteAESGCM)
}
