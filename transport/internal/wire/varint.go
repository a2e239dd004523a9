package wire

import "fmt"

// MaxVarint is the largest value a QUIC variable-length integer can hold
// (RFC 9000 §16): 62 bits.
const MaxVarint = 1<<62 - 1

// Upper bounds of the 1-, 2- and 4-byte encodings.
const (
	maxVarint1 = 1<<6 - 1
	maxVarint2 = 1<<14 - 1
	maxVarint4 = 1<<30 - 1
)

// errVarintTruncated is preallocated so ReadVarint never allocates, even on
// failure (it sits on the path of every peer-supplied integer).
var errVarintTruncated = fmt.Errorf("wire: varint: %w", ErrTruncated)

// VarintLen returns the number of bytes AppendVarint uses for v: 1, 2, 4 or 8.
// It panics if v > MaxVarint, which only a caller bug can produce.
func VarintLen(v uint64) int {
	switch {
	case v <= maxVarint1:
		return 1
	case v <= maxVarint2:
		return 2
	case v <= maxVarint4:
		return 4
	case v <= MaxVarint:
		return 8
	}
	panicVarint(v)
	return 0
}

// AppendVarint appends the minimal encoding of v to b. The two high bits of
// the first byte give the length (00=1, 01=2, 10=4, 11=8 bytes); the rest is
// v in big-endian order. It panics if v > MaxVarint: callers encode values
// they produced themselves, so such a value is a broken invariant.
func AppendVarint(b []byte, v uint64) []byte {
	switch {
	case v <= maxVarint1:
		return append(b, byte(v))
	case v <= maxVarint2:
		return append(b, byte(v>>8)|0x40, byte(v))
	case v <= maxVarint4:
		return append(b, byte(v>>24)|0x80, byte(v>>16), byte(v>>8), byte(v))
	case v <= MaxVarint:
		return append(b, byte(v>>56)|0xc0, byte(v>>48), byte(v>>40), byte(v>>32),
			byte(v>>24), byte(v>>16), byte(v>>8), byte(v))
	}
	panicVarint(v)
	return nil
}

// ReadVarint decodes the varint at the start of b and returns its value and
// encoded length. Non-minimal encodings are accepted, as RFC 9000 allows. By
// construction the result is at most MaxVarint. The only error is a
// truncated input (wrapping ErrTruncated).
func ReadVarint(b []byte) (v uint64, n int, err error) {
	v, n, ok := decodeVarint(b)
	if !ok {
		return 0, 0, errVarintTruncated
	}
	return v, n, nil
}

// decodeVarint is ReadVarint without the error value, for the parser, which
// reports failures with its own context.
func decodeVarint(b []byte) (v uint64, n int, ok bool) {
	if len(b) == 0 {
		return 0, 0, false
	}
	n = 1 << (b[0] >> 6)
	if len(b) < n {
		return 0, 0, false
	}
	v = uint64(b[0] & 0x3f)
	for _, c := range b[1:n] {
		v = v<<8 | uint64(c)
	}
	return v, n, true
}

// panicVarint is out of line so the encoders stay small enough to inline.
//
//go:noinline
func panicVarint(v uint64) {
	panic(fmt.Sprintf("wire: varint value %d exceeds MaxVarint", v))
}
