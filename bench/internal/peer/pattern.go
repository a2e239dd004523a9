package peer

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
)

// patternLen is the period of the payload pattern. It is odd-sized (not a
// power of two) so a byte shifted by a multiple of a typical packet or write
// size still compares unequal.
const patternLen = 1<<20 + 4099

// Pattern is the payload every bulk peer sends: a seeded pseudo-random byte
// sequence, stored twice so any window of up to patternLen bytes is one
// contiguous slice. Senders write straight from it (no per-byte generation
// cost in the measurement) and receivers compare against it with
// bytes.Equal, which is memcmp-fast, so verifying every byte costs little.
type Pattern struct {
	data []byte // 2*patternLen
}

// NewPattern builds the pattern for seed.
func NewPattern(seed uint64) *Pattern {
	r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	d := make([]byte, 2*patternLen)
	for i := 0; i < patternLen; i += 8 {
		var w [8]byte
		binary.LittleEndian.PutUint64(w[:], r.Uint64())
		copy(d[i:patternLen], w[:])
	}
	copy(d[patternLen:], d[:patternLen])
	return &Pattern{data: d}
}

// streamShift makes every stream's bytes differ, so data delivered on the
// wrong stream fails verification.
func streamShift(stream int) int64 { return int64(stream) * 7919 }

// Window returns the n bytes (n <= MaxWindow) stream carries at offset off.
// The slice aliases the pattern: callers must not modify it.
func (p *Pattern) Window(stream int, off int64, n int) []byte {
	if n > patternLen {
		panic("peer: pattern window too large")
	}
	start := (off + streamShift(stream)) % patternLen
	return p.data[start : start+int64(n)]
}

// MaxWindow is the largest n Window accepts.
const MaxWindow = patternLen

// Verify reports whether got is what stream carries at offset off.
func (p *Pattern) Verify(stream int, off int64, got []byte) error {
	for len(got) > 0 {
		n := min(len(got), MaxWindow)
		if !bytes.Equal(got[:n], p.Window(stream, off, n)) {
			return fmt.Errorf("stream %d: data differs from what was sent near offset %d", stream, off)
		}
		got, off = got[n:], off+int64(n)
	}
	return nil
}

// Bulk streams start with a header so a receiver knows which stream it has
// and how long it is whatever order the transport delivers streams in, and
// peers without half-close (kcp) know where a stream ends.
const (
	headerLen   = 16
	headerMagic = 0x464c4e42 // "FLNB"
)

// AckByte is what the receiver sends back on a stream once it has verified
// all of it; the sender's phase ends when every stream's ack arrived.
const AckByte = 'K'

// ErrBadHeader is a bulk stream that does not start with a valid header.
var ErrBadHeader = errors.New("bulk stream: bad header")

// WriteBulk writes stream i of a Bulk run to w: header, then s.StreamBytes(i)
// pattern bytes in writes of up to chunk bytes. It returns the payload bytes
// written.
func WriteBulk(w io.Writer, s *Spec, p *Pattern, i int, chunk int) (int64, error) {
	var h [headerLen]byte
	size := s.StreamBytes(i)
	binary.BigEndian.PutUint32(h[0:], headerMagic)
	binary.BigEndian.PutUint32(h[4:], uint32(i))
	binary.BigEndian.PutUint64(h[8:], uint64(size))
	if _, err := w.Write(h[:]); err != nil {
		return 0, fmt.Errorf("write header of stream %d: %w", i, err)
	}
	chunk = min(max(chunk, 1), MaxWindow)
	var off int64
	for off < size {
		n := int(min(int64(chunk), size-off))
		k, err := w.Write(p.Window(i, off, n))
		off += int64(k)
		if err != nil {
			return off, fmt.Errorf("write stream %d at %d: %w", i, off, err)
		}
	}
	return off, nil
}

// ReadBulk reads one bulk stream from r, verifying every byte, using buf as
// scratch. It returns the stream index and the payload bytes verified. A
// stream that ends early, carries a wrong index or differs from the pattern
// is an error.
func ReadBulk(r io.Reader, s *Spec, p *Pattern, buf []byte) (int, int64, error) {
	var h [headerLen]byte
	if _, err := io.ReadFull(r, h[:]); err != nil {
		return -1, 0, fmt.Errorf("read header: %w", err)
	}
	if binary.BigEndian.Uint32(h[0:]) != headerMagic {
		return -1, 0, ErrBadHeader
	}
	i := int(binary.BigEndian.Uint32(h[4:]))
	size := int64(binary.BigEndian.Uint64(h[8:]))
	if i < 0 || i >= s.Streams || size != s.StreamBytes(i) {
		return -1, 0, fmt.Errorf("%w: stream %d of %d, %d bytes", ErrBadHeader, i, s.Streams, size)
	}
	var off int64
	for off < size {
		n := int(min(int64(len(buf)), size-off))
		k, err := r.Read(buf[:n])
		if k > 0 {
			if verr := p.Verify(i, off, buf[:k]); verr != nil {
				return i, off, verr
			}
			off += int64(k)
		}
		if err != nil {
			if off == size && err == io.EOF {
				break
			}
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return i, off, fmt.Errorf("stream %d at %d of %d: %w", i, off, size, err)
		}
	}
	return i, off, nil
}
