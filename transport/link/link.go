// Package link defines the datapath seam of flightline: a small, batch-first
// interface that every way of moving packets implements (UDP sockets with
// recvmmsg/sendmmsg, AF_XDP sockets, an in-memory pair for tests).
//
// The protocol engine in package transport only ever sees a Link. It never
// learns which datapath it runs on except through Caps, which exists for
// statistics and for optional fast paths, never for correctness.
//
// Buffer ownership: the caller owns every buffer. ReadBatch fills buffers the
// caller supplied; WriteBatch does not retain the buffers after it returns.
package link

import (
	"errors"
	"net/netip"
)

// MaxPacketSize is the largest UDP payload any datapath must be able to carry:
// a 1500-byte Ethernet MTU minus the IPv6 (40) and UDP (8) headers. Callers
// size receive buffers with it.
const MaxPacketSize = 1452

// IdealBatchSize is the number of packets a caller should try to move per
// ReadBatch/WriteBatch call. Links may accept fewer (see BatchSize).
const IdealBatchSize = 64

// Message is one datagram in a batch.
//
// On ReadBatch the caller provides Buf with cap(Buf) >= MaxPacketSize; the link
// sets len(Buf) to the datagram length and Addr to the sender. On WriteBatch
// Buf is the datagram and Addr the destination.
type Message struct {
	Buf  []byte
	Addr netip.AddrPort
}

// Caps describes what a link is and which offloads it uses. It is reported in
// connection statistics so an operator can see which datapath ran.
type Caps struct {
	Datapath string // "udp", "xdp" or "mem"
	GSO      bool   // UDP generic segmentation offload on send
	GRO      bool   // UDP generic receive offload on receive
	ZeroCopy bool   // AF_XDP zero-copy mode
	Queues   int    // receive queues served (1 for sockets)
	Note     string // why an offload is off, e.g. "GSO disabled: EIO on first send"
	// Counters are the datapath's own drop and queue-occupancy counters at
	// the time Caps was called; zero for links that keep none.
	Counters Counters
}

// Counters are a datapath's own loss and occupancy counters, summed over
// its queues. A lossless network with a healthy datapath keeps every drop
// counter at zero; a nonzero one names a loss the datapath caused itself.
type Counters struct {
	// Kernel AF_XDP counters (XDP_STATISTICS).
	RxDropped       uint64 `json:"rx_dropped"`         // received frames the kernel dropped (no fill frame, too large, ...)
	RxRingFull      uint64 `json:"rx_ring_full"`       // frames dropped because the RX ring was full: reader too slow
	RxFillRingEmpty uint64 `json:"rx_fill_ring_empty"` // frames dropped because the fill ring was empty: refill too slow
	RxInvalidDescs  uint64 `json:"rx_invalid_descs"`   // malformed fill/RX descriptors (a userspace bug)
	TxInvalidDescs  uint64 `json:"tx_invalid_descs"`   // malformed TX descriptors (a userspace bug, or frame over MTU)
	TxRingEmpty     uint64 `json:"tx_ring_empty"`      // kernel found the TX ring empty when woken (not a loss)

	// Transmit backpressure and next-hop resolution.
	TxFullWaits    uint64 `json:"tx_full_waits"`   // WriteBatch waited for a free TX frame (backpressure, not a loss)
	TxFullErrors   uint64 `json:"tx_full_errors"`  // WriteBatch gave up waiting and returned a transient error
	NeighbourDrops uint64 `json:"neighbour_drops"` // datagrams not sent because the next hop's MAC was unresolved

	// Occupancy of the receive frames: how many there are, how many sit on
	// the fill ring now, and the fewest seen on it after a refill (a
	// low-water mark near zero means the kernel nearly ran out of frames).
	FillSize     uint32 `json:"fill_size"`
	FillQueued   uint32 `json:"fill_queued"`
	FillLowWater uint32 `json:"fill_low_water"`
	// Occupancy of the transmit frames: how many there are and how many are
	// in the TX or completion ring now.
	TxFrames   uint32 `json:"tx_frames"`
	TxInFlight uint32 `json:"tx_in_flight"`
}

// Link moves batches of datagrams. ReadBatch is called from one goroutine at
// a time; WriteBatch may be called concurrently with ReadBatch but callers
// serialise WriteBatch calls among themselves.
type Link interface {
	// ReadBatch blocks until at least one datagram is available, fills
	// msgs[:n] and returns n. After Close it returns net.ErrClosed.
	ReadBatch(msgs []Message) (n int, err error)
	// WriteBatch sends msgs in order and returns how many were handed to
	// the datapath. When n < len(msgs), err says why msgs[n] failed.
	WriteBatch(msgs []Message) (n int, err error)
	// BatchSize is the largest batch the link moves in one call.
	BatchSize() int
	// Caps reports the datapath and its offloads.
	Caps() Caps
	// LocalAddr is the address peers send to.
	LocalAddr() netip.AddrPort
	// Close releases the link; blocked ReadBatch calls return net.ErrClosed.
	Close() error
}

// ErrTooLarge is returned by WriteBatch for a datagram the datapath cannot
// carry (larger than its MTU or frame size).
var ErrTooLarge = errors.New("link: datagram too large for datapath")
