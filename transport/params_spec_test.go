package transport

import (
	"encoding/hex"
	"os"
	"regexp"
	"testing"

	"github.com/stretchr/testify/require"
)

// The responder parameters of the test vectors in docs/protocol.md §17 are
// documented as flightline's defaults: the encoder must produce exactly
// those bytes, and the parser must read them back (§6).
func TestParamsMatchSpecVector(t *testing.T) {
	doc, err := os.ReadFile("../docs/protocol.md")
	require.NoError(t, err)
	m := regexp.MustCompile(`(?m)^responder_params: ([0-9a-f]+)$`).FindSubmatch(doc)
	require.NotNil(t, m, "docs/protocol.md lacks the responder_params vector")
	want, err := hex.DecodeString(string(m[1]))
	require.NoError(t, err)

	c, err := (&Config{}).populate()
	require.NoError(t, err)
	got := paramsFromConfig(c).append(nil)
	require.Equal(t, hex.EncodeToString(want), hex.EncodeToString(got))

	p, err := parseParams(append(got, 0xff, 0x00)) // trailing bytes are ignored
	require.NoError(t, err)
	require.Equal(t, paramsFromConfig(c), p)
	_, err = parseParams(nil)
	require.ErrorIs(t, err, errBadParams, "an empty payload is invalid")
	_, err = parseParams(got[:len(got)-2])
	require.ErrorIs(t, err, errBadParams, "four varints are not enough")
}
