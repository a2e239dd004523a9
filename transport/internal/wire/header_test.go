package wire

import (
	"testing"

	"github.com/stretchr/testify/require"
)

// Packet numbers travel in ACK frames as varints, so a header naming one
// above MaxPacketNumber is malformed however well it is authenticated.
func TestParseDataHeaderPacketNumberRange(t *testing.T) {
	for _, tc := range []struct {
		pn uint64
		ok bool
	}{
		{0, true},
		{MaxPacketNumber, true},
		{MaxPacketNumber + 1, false},
		{1 << 63, false},
		{^uint64(0), false},
	} {
		b := AppendDataHeader(nil, DataHeader{ConnID: 7, PN: tc.pn})
		h, err := ParseDataHeader(b)
		if tc.ok {
			require.NoError(t, err, "pn %d", tc.pn)
			require.Equal(t, DataHeader{ConnID: 7, PN: tc.pn}, h)
		} else {
			require.ErrorIs(t, err, ErrMalformed, "pn %d", tc.pn)
		}
	}
}
