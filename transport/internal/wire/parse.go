package wire

import "fmt"

// Parser walks the frames of one decrypted payload. It is meant to be reused
// (one per receive goroutine or connection): Reset it with each payload. Its
// zero value is an empty parser. It is about 1 KiB because it embeds the
// backing array for ACK ranges, which is what lets Next avoid allocation.
//
// A Parser is not safe for concurrent use.
type Parser struct {
	buf []byte
	off int
	// err is sticky: frames are not self-delimiting, so once one fails to
	// parse nothing after it can be located.
	err    error
	ranges [MaxAckRanges]AckRange
}

// Reset starts parsing payload from its first byte. The parser keeps a
// reference to payload; Frame.Data and Frame.Reason point into it.
func (p *Parser) Reset(payload []byte) {
	p.buf = payload
	p.off = 0
	p.err = nil
}

// Next decodes the next frame into f. It returns ok=false with a nil error at
// the end of the payload. PADDING bytes are skipped silently. On failure it
// returns an error wrapping ErrTruncated, ErrMalformed or ErrUnknownFrame and
// keeps returning it until Reset. f.Ranges aliases parser storage and is only
// valid until the next call to Next or Reset.
func (p *Parser) Next(f *Frame) (ok bool, err error) {
	if p.err != nil {
		return false, p.err
	}
	for p.off < len(p.buf) && p.buf[p.off] == byte(FramePadding) {
		p.off++
	}
	if p.off >= len(p.buf) {
		return false, nil
	}
	start := p.off
	t := FrameType(p.buf[p.off])
	p.off++
	*f = Frame{Type: t}
	switch {
	case t == FramePing:
	case t == FrameAck:
		err = p.parseAck(f)
	case t == FrameResetStream:
		if f.StreamID, err = p.varint("stream id"); err != nil {
			break
		}
		if f.ErrorCode, err = p.varint("error code"); err != nil {
			break
		}
		f.FinalSize, err = p.varint("final size")
	case t == FrameStopSending:
		if f.StreamID, err = p.varint("stream id"); err != nil {
			break
		}
		f.ErrorCode, err = p.varint("error code")
	case t >= FrameStream && t <= streamTypeMax:
		f.Type = FrameStream
		err = p.parseStream(f, t)
	case t == FrameMaxData, t == FrameMaxStreams:
		f.Max, err = p.varint("maximum")
	case t == FrameDataBlocked:
		f.Max, err = p.varint("limit")
	case t == FrameMaxStreamData:
		if f.StreamID, err = p.varint("stream id"); err != nil {
			break
		}
		f.Max, err = p.varint("maximum")
	case t == FrameStreamDataBlocked:
		if f.StreamID, err = p.varint("stream id"); err != nil {
			break
		}
		f.Max, err = p.varint("limit")
	case t == FramePathChallenge, t == FramePathResponse:
		var b []byte
		if b, err = p.bytes("path data", PathDataLen); err == nil {
			copy(f.PathData[:], b)
		}
	case t == FrameConnectionClose:
		if f.ErrorCode, err = p.varint("error code"); err != nil {
			break
		}
		f.Reason, err = p.lengthPrefixed("reason length", "reason")
	case t == FrameMessage:
		f.Data, err = p.lengthPrefixed("message length", "message")
	default:
		err = ErrUnknownFrame
	}
	if err != nil {
		*f = Frame{}
		p.err = fmt.Errorf("wire: %v frame at byte %d: %w", t, start, err)
		return false, p.err
	}
	return true, nil
}

// varint reads one varint field; field names it in the error.
func (p *Parser) varint(field string) (uint64, error) {
	v, n, ok := decodeVarint(p.buf[p.off:])
	if !ok {
		return 0, fmt.Errorf("%s: %w", field, ErrTruncated)
	}
	p.off += n
	return v, nil
}

// bytes consumes the next n bytes. The result's capacity is clipped so that
// appending to it cannot clobber the following frame.
func (p *Parser) bytes(field string, n uint64) ([]byte, error) {
	if rest := len(p.buf) - p.off; n > uint64(rest) {
		return nil, fmt.Errorf("%s: length %d exceeds the %d remaining bytes: %w", field, n, rest, ErrTruncated)
	}
	end := p.off + int(n)
	b := p.buf[p.off:end:end]
	p.off = end
	return b, nil
}

// lengthPrefixed reads a varint length followed by that many bytes. The two
// names are separate constants so the success path builds no strings.
func (p *Parser) lengthPrefixed(lenField, field string) ([]byte, error) {
	n, err := p.varint(lenField)
	if err != nil {
		return nil, err
	}
	return p.bytes(field, n)
}

// parseStream decodes the fields after a STREAM type byte t.
func (p *Parser) parseStream(f *Frame, t FrameType) error {
	var err error
	if f.StreamID, err = p.varint("stream id"); err != nil {
		return err
	}
	if t&streamOffBit != 0 {
		if f.Offset, err = p.varint("offset"); err != nil {
			return err
		}
	}
	n := uint64(len(p.buf) - p.off) // without LEN, data runs to the end
	if t&streamLenBit != 0 {
		if n, err = p.varint("length"); err != nil {
			return err
		}
	}
	// Both terms are <= MaxVarint, so the sum cannot wrap a uint64.
	if f.Offset+n > MaxVarint {
		return fmt.Errorf("offset %d + length %d exceeds the maximum stream size: %w", f.Offset, n, ErrMalformed)
	}
	if f.Data, err = p.bytes("data", n); err != nil {
		return err
	}
	f.Fin = t&streamFinBit != 0
	return nil
}

// parseAck decodes an ACK frame (RFC 9000 §19.3). Ranges are reconstructed
// from largest downwards:
//
//	range 0:  [largest - firstRange, largest]
//	range i:  largest_i  = smallest_{i-1} - gap_i - 2
//	          smallest_i = largest_i - len_i
//
// The "-2" means a gap of 0 still leaves one unacknowledged packet between
// ranges, so the result is always descending, non-overlapping and
// non-adjacent. Any step that would go below 0 is ErrMalformed.
func (p *Parser) parseAck(f *Frame) error {
	largest, err := p.varint("largest acknowledged")
	if err != nil {
		return err
	}
	if f.AckDelay, err = p.varint("ack delay"); err != nil {
		return err
	}
	count, err := p.varint("range count")
	if err != nil {
		return err
	}
	if count > MaxAckRanges-1 {
		return fmt.Errorf("%d ranges exceed the limit of %d: %w", count+1, MaxAckRanges, ErrMalformed)
	}
	first, err := p.varint("first range")
	if err != nil {
		return err
	}
	if first > largest {
		return fmt.Errorf("first range %d exceeds largest acknowledged %d: %w", first, largest, ErrMalformed)
	}
	smallest := largest - first
	p.ranges[0] = AckRange{Smallest: smallest, Largest: largest}
	for i := 1; i <= int(count); i++ {
		gap, err := p.varint("gap")
		if err != nil {
			return err
		}
		length, err := p.varint("range length")
		if err != nil {
			return err
		}
		// gap <= MaxVarint, so gap+2 cannot wrap.
		if gap+2 > smallest {
			return fmt.Errorf("range %d: gap %d below packet number 0: %w", i, gap, ErrMalformed)
		}
		hi := smallest - gap - 2
		if length > hi {
			return fmt.Errorf("range %d: length %d below packet number 0: %w", i, length, ErrMalformed)
		}
		smallest = hi - length
		p.ranges[i] = AckRange{Smallest: smallest, Largest: hi}
	}
	f.Ranges = p.ranges[:count+1]
	return nil
}
