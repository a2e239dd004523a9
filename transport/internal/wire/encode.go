package wire

import "fmt"

// The encoders below append one frame to b and return the extended slice.
// They do not allocate when b has enough spare capacity; the matching ...Len
// and ...Overhead functions let callers reserve exactly that much. Values
// above MaxVarint panic (see AppendVarint): they can only come from a bug.

// AppendPing appends a PING frame: a single type byte that makes the packet
// ack-eliciting (used for keep-alives and probes).
func AppendPing(b []byte) []byte { return append(b, byte(FramePing)) }

// AppendAck appends an ACK frame for ranges, which must be non-empty, in
// descending order, non-overlapping and non-adjacent (at least one missing
// packet number between consecutive ranges), each with Smallest <= Largest.
// Only the first MaxAckRanges ranges (the most recent) are written; the
// peer retransmits nothing because of the omission, it merely learns about
// very old packets later. Invalid ranges panic: the ACK tracker that builds
// them is the only caller.
func AppendAck(b []byte, ranges []AckRange, ackDelayMicros uint64) []byte {
	ranges = clipAckRanges(ranges)
	b = append(b, byte(FrameAck))
	b = AppendVarint(b, ranges[0].Largest)
	b = AppendVarint(b, ackDelayMicros)
	b = AppendVarint(b, uint64(len(ranges)-1))
	b = AppendVarint(b, ranges[0].Largest-ranges[0].Smallest)
	for i := 1; i < len(ranges); i++ {
		gap, length := ackGap(ranges[i-1], ranges[i])
		b = AppendVarint(b, gap)
		b = AppendVarint(b, length)
	}
	return b
}

// AckLen returns the number of bytes AppendAck writes for the same arguments.
func AckLen(ranges []AckRange, ackDelayMicros uint64) int {
	ranges = clipAckRanges(ranges)
	n := 1 + VarintLen(ranges[0].Largest) + VarintLen(ackDelayMicros) +
		VarintLen(uint64(len(ranges)-1)) + VarintLen(ranges[0].Largest-ranges[0].Smallest)
	for i := 1; i < len(ranges); i++ {
		gap, length := ackGap(ranges[i-1], ranges[i])
		n += VarintLen(gap) + VarintLen(length)
	}
	return n
}

// clipAckRanges validates the first range and applies the MaxAckRanges cap.
func clipAckRanges(ranges []AckRange) []AckRange {
	if len(ranges) == 0 {
		panic("wire: ACK frame needs at least one range")
	}
	if ranges[0].Smallest > ranges[0].Largest {
		panicAckRange(0, ranges[0])
	}
	if len(ranges) > MaxAckRanges {
		ranges = ranges[:MaxAckRanges]
	}
	return ranges
}

// ackGap returns the (gap, rangeLength) pair encoding cur after prev, the
// inverse of the reconstruction in Parser.parseAck.
func ackGap(prev, cur AckRange) (gap, length uint64) {
	// cur.Largest <= prev.Smallest-2 guarantees at least one missing packet
	// between the ranges; the prev.Smallest < 2 test keeps -2 from wrapping.
	if cur.Smallest > cur.Largest || prev.Smallest < 2 || cur.Largest > prev.Smallest-2 {
		panicAckRange(-1, cur)
	}
	return prev.Smallest - cur.Largest - 2, cur.Largest - cur.Smallest
}

//go:noinline
func panicAckRange(i int, r AckRange) {
	panic(fmt.Sprintf("wire: ACK range %d [%d, %d] is empty, unordered, overlapping or adjacent", i, r.Smallest, r.Largest))
}

// AppendStream appends a STREAM frame carrying data at offset of stream id.
// It always writes the LEN field, so the frame can be followed by others, and
// writes OFF only when offset > 0. offset+len(data) must not exceed MaxVarint.
func AppendStream(b []byte, id, offset uint64, data []byte, fin bool) []byte {
	return append(AppendStreamHeader(b, id, offset, len(data), fin), data...)
}

// AppendStreamHeader appends the STREAM frame header for dataLen bytes
// without the data, so a sender can place the data first (straight from its
// stream buffer) and the header in front of it. It writes exactly
// StreamOverhead(id, offset, dataLen) bytes.
func AppendStreamHeader(b []byte, id, offset uint64, dataLen int, fin bool) []byte {
	t := byte(FrameStream) | streamLenBit
	if offset > 0 {
		t |= streamOffBit
	}
	if fin {
		t |= streamFinBit
	}
	b = append(b, t)
	b = AppendVarint(b, id)
	if offset > 0 {
		b = AppendVarint(b, offset)
	}
	return AppendVarint(b, uint64(dataLen))
}

// StreamOverhead returns the bytes AppendStream writes before the data, so a
// packer can work out how much stream data fits in the remaining space.
func StreamOverhead(id, offset uint64, dataLen int) int {
	n := 1 + VarintLen(id) + VarintLen(uint64(dataLen))
	if offset > 0 {
		n += VarintLen(offset)
	}
	return n
}

// AppendResetStream appends RESET_STREAM: the sender abandons stream id with
// an application error code, having sent finalSize bytes in total.
func AppendResetStream(b []byte, id, code, finalSize uint64) []byte {
	b = append(b, byte(FrameResetStream))
	b = AppendVarint(b, id)
	b = AppendVarint(b, code)
	return AppendVarint(b, finalSize)
}

// AppendStopSending appends STOP_SENDING: the receiver asks the peer to stop
// sending on stream id.
func AppendStopSending(b []byte, id, code uint64) []byte {
	b = append(b, byte(FrameStopSending))
	b = AppendVarint(b, id)
	return AppendVarint(b, code)
}

// AppendMaxData appends MAX_DATA, raising the connection-level flow-control
// limit to max bytes.
func AppendMaxData(b []byte, max uint64) []byte {
	return AppendVarint(append(b, byte(FrameMaxData)), max)
}

// AppendMaxStreamData appends MAX_STREAM_DATA, raising stream id's limit to
// max bytes.
func AppendMaxStreamData(b []byte, id, max uint64) []byte {
	b = append(b, byte(FrameMaxStreamData))
	b = AppendVarint(b, id)
	return AppendVarint(b, max)
}

// AppendMaxStreams appends MAX_STREAMS: the peer may open max streams in
// total.
func AppendMaxStreams(b []byte, max uint64) []byte {
	return AppendVarint(append(b, byte(FrameMaxStreams)), max)
}

// AppendDataBlocked appends DATA_BLOCKED: the sender has data but is blocked
// by the connection limit limit.
func AppendDataBlocked(b []byte, limit uint64) []byte {
	return AppendVarint(append(b, byte(FrameDataBlocked)), limit)
}

// AppendStreamDataBlocked appends STREAM_DATA_BLOCKED: the sender is blocked
// by stream id's limit limit.
func AppendStreamDataBlocked(b []byte, id, limit uint64) []byte {
	b = append(b, byte(FrameStreamDataBlocked))
	b = AppendVarint(b, id)
	return AppendVarint(b, limit)
}

// AppendConnectionClose appends CONNECTION_CLOSE with an error code and a
// human-readable reason (the caller keeps it short enough to fit the packet).
func AppendConnectionClose(b []byte, code uint64, reason string) []byte {
	b = append(b, byte(FrameConnectionClose))
	b = AppendVarint(b, code)
	b = AppendVarint(b, uint64(len(reason)))
	return append(b, reason...)
}

// AppendMessage appends a MESSAGE frame: a whole, reliably delivered
// application message that is not part of any stream.
func AppendMessage(b []byte, data []byte) []byte {
	b = append(b, byte(FrameMessage))
	b = AppendVarint(b, uint64(len(data)))
	return append(b, data...)
}

// MessageOverhead returns the bytes AppendMessage writes before an n-byte
// message.
func MessageOverhead(n int) int { return 1 + VarintLen(uint64(n)) }

// AppendPathChallenge appends a PATH_CHALLENGE frame carrying data, which
// the sender must have drawn from a CSPRNG (its only protection against an
// off-path guess). The frame is PathFrameLen bytes.
func AppendPathChallenge(b []byte, data [PathDataLen]byte) []byte {
	return append(append(b, byte(FramePathChallenge)), data[:]...)
}

// AppendPathResponse appends a PATH_RESPONSE frame echoing a challenge's
// data. The frame is PathFrameLen bytes.
func AppendPathResponse(b []byte, data [PathDataLen]byte) []byte {
	return append(append(b, byte(FramePathResponse)), data[:]...)
}
