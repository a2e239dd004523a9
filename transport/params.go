package transport

import (
	"errors"
	"time"

	"github.com/flightline/flightline/transport/internal/wire"
)

// transportParams are the limits each side announces in its handshake
// payload: five varints in field order, trailing bytes ignored
// (docs/protocol.md §6). Every value is capped on receipt before anything
// is sized by it.
type transportParams struct {
	streamWindow  uint64 // initial MAX_STREAM_DATA for every stream
	connWindow    uint64 // initial MAX_DATA
	maxStreams    uint64 // streams the peer may open
	idleTimeout   time.Duration
	maxPacketSize uint64
}

func paramsFromConfig(c *Config) transportParams {
	return transportParams{
		streamWindow:  c.StreamReceiveWindow,
		connWindow:    c.ConnectionReceiveWindow,
		maxStreams:    uint64(c.MaxStreams),
		idleTimeout:   c.IdleTimeout,
		maxPacketSize: uint64(c.MaxPacketSize),
	}
}

func (p transportParams) append(b []byte) []byte {
	b = wire.AppendVarint(b, p.streamWindow)
	b = wire.AppendVarint(b, p.connWindow)
	b = wire.AppendVarint(b, p.maxStreams)
	b = wire.AppendVarint(b, uint64(p.idleTimeout/time.Millisecond))
	b = wire.AppendVarint(b, p.maxPacketSize)
	return b
}

var errBadParams = errors.New("malformed transport parameters")

// Caps on peer-declared values: a peer cannot make us allocate or wait
// beyond these, whatever it announces.
const (
	maxPeerWindow     = 1 << 40
	maxPeerStreams    = 1 << 20
	maxPeerIdle       = 10 * time.Minute
	minPeerPacketSize = 256
)

func parseParams(b []byte) (transportParams, error) {
	var v [5]uint64
	for i := range v {
		x, n, err := wire.ReadVarint(b)
		if err != nil {
			return transportParams{}, errBadParams
		}
		v[i] = x
		b = b[n:]
	}
	p := transportParams{
		streamWindow:  min(v[0], maxPeerWindow),
		connWindow:    min(v[1], maxPeerWindow),
		maxStreams:    min(v[2], maxPeerStreams),
		idleTimeout:   min(time.Duration(min(v[3], uint64(maxPeerIdle/time.Millisecond)))*time.Millisecond, maxPeerIdle),
		maxPacketSize: v[4],
	}
	if p.maxPacketSize < minPeerPacketSize {
		return transportParams{}, errBadParams
	}
	return p, nil
}
