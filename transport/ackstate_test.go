package transport

import (
	"testing"
	"time"

	"github.com/flightline/flightline/transport/internal/monotime"
	"github.com/flightline/flightline/transport/internal/wire"
	"github.com/stretchr/testify/require"
)

// frameLen must be the exact size appendFrame writes, whatever the ack
// delay: the send path reserves room with it. It once assumed a 4-byte
// delay, and a delay past 2^30 µs encodes in 8, so a frame sized to the
// last byte overran the packet.
func TestAckFrameLenExact(t *testing.T) {
	const base = monotime.Time(1_000_000)
	delays := []time.Duration{0, time.Microsecond, 63 * time.Microsecond, 64 * time.Microsecond,
		16383 * time.Microsecond, 16384 * time.Microsecond, time.Second,
		(1<<30 - 1) * time.Microsecond, (1 << 30) * time.Microsecond, 2 * time.Hour, 1 << 62}
	for _, pnBase := range []uint64{0, 1 << 20, wire.MaxPacketNumber - 1000} {
		var a ackState
		for pn := pnBase; pn < pnBase+200; pn += 3 { // 67 ranges: more than maxAckRanges
			a.insert(pn)
			a.onPacket(pn, base, true, time.Millisecond)
		}
		for _, d := range delays {
			now := base + monotime.Time(min(d, 1<<62))
			want := a.frameLen(now)
			got := len(a.appendFrame(nil, now))
			require.Equal(t, want, got, "pn base %d, delay %v", pnBase, d)
		}
	}
}
