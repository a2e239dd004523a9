package wire

import (
	"testing"
)

// boundaries are the values where the varint encoding changes length.
var boundaries = []uint64{0, 63, 64, 16383, 16384, 1<<30 - 1, 1 << 30, MaxVarint}

func TestVarintRoundTrip(t *testing.T) {
	tests := []struct {
		name string
		v    uint64
		len  int
	}{
		{"zero", 0, 1},
		{"max1", 63, 1},
		{"min2", 64, 2},
		{"max2", 16383, 2},
		{"min4", 16384, 4},
		{"max4", 1<<30 - 1, 4},
		{"min8", 1 << 30, 8},
		{"max8", MaxVarint, 8},
		{"rfc9000-example-2", 15293, 2},
		{"rfc9000-example-4", 494878333, 4},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := AppendVarint([]byte{0xaa}, tt.v)
			equal(t, byte(0xaa), b[0], "prefix preserved")
			equal(t, 1+tt.len, len(b))
			equal(t, tt.len, VarintLen(tt.v))
			v, n, err := ReadVarint(append(b[1:], 0xff)) // trailing byte is ignored
			noErr(t, err)
			equal(t, tt.v, v)
			equal(t, tt.len, n)
			for i := range tt.len {
				_, _, err := ReadVarint(b[1 : 1+i])
				errIs(t, err, ErrTruncated, "truncated to %d bytes", i)
			}
		})
	}
}

func TestVarintKnownEncodings(t *testing.T) {
	// Examples from RFC 9000 Appendix A.1, including a non-minimal one.
	tests := []struct {
		name string
		in   []byte
		v    uint64
	}{
		{"8-byte", []byte{0xc2, 0x19, 0x7c, 0x5e, 0xff, 0x14, 0xe8, 0x8c}, 151288809941952652},
		{"4-byte", []byte{0x9d, 0x7f, 0x3e, 0x7d}, 494878333},
		{"2-byte", []byte{0x7b, 0xbd}, 15293},
		{"1-byte", []byte{0x25}, 37},
		{"non-minimal-2-byte", []byte{0x40, 0x25}, 37},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v, n, err := ReadVarint(tt.in)
			noErr(t, err)
			equal(t, tt.v, v)
			equal(t, len(tt.in), n)
			if tt.name != "non-minimal-2-byte" {
				equal(t, tt.in, AppendVarint(nil, tt.v))
			}
		})
	}
}

func TestVarintTooLargePanics(t *testing.T) {
	panics(t, func() { AppendVarint(nil, MaxVarint+1) })
	panics(t, func() { VarintLen(1 << 63) })
}

func TestReadVarintEmpty(t *testing.T) {
	_, _, err := ReadVarint(nil)
	errIs(t, err, ErrTruncated)
}

func TestDataHeader(t *testing.T) {
	tests := []struct {
		name string
		h    DataHeader
	}{
		{"zero", DataHeader{}},
		{"small", DataHeader{ConnID: 1, PN: 2}},
		{"max", DataHeader{ConnID: ^uint64(0), PN: MaxPacketNumber}},
		{"mixed", DataHeader{ConnID: 0x0102030405060708, PN: 0x1122334455667788 >> 2}},
		{"phase1", DataHeader{ConnID: 7, PN: 9, KeyPhase: 1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := AppendDataHeader(nil, tt.h)
			equal(t, DataHeaderLen, len(b))
			equal(t, TypeData+tt.h.KeyPhase, b[0])
			got, err := ParseDataHeader(append(b, "payload"...))
			noErr(t, err)
			equal(t, tt.h, got)
			typ, err := PacketType(b)
			noErr(t, err)
			equal(t, TypeData, typ)
			for i := range DataHeaderLen {
				_, err := ParseDataHeader(b[:i])
				errIs(t, err, ErrTruncated, "truncated to %d bytes", i)
			}
		})
	}
	// Big-endian layout.
	b := AppendDataHeader(nil, DataHeader{ConnID: 0x0102030405060708, PN: 0x090a0b0c0d0e0f10})
	equal(t, []byte{4, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16}, b)
	// The key phase is the type byte's low bit.
	b = AppendDataHeader(nil, DataHeader{ConnID: 0x0102030405060708, PN: 0x090a0b0c0d0e0f10, KeyPhase: 1})
	equal(t, []byte{5, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16}, b)
}

func TestParseDataHeaderWrongType(t *testing.T) {
	for _, typ := range []byte{0, TypeInitiation, TypeResponse, TypeCookie, 6, 0x84, 0xff} {
		b := make([]byte, DataHeaderLen)
		b[0] = typ
		_, err := ParseDataHeader(b)
		errIs(t, err, ErrMalformed, "type %d", typ)
	}
}

func TestPacketType(t *testing.T) {
	tests := []struct {
		name string
		in   []byte
		want byte
		err  error
	}{
		{"empty", nil, 0, ErrTruncated},
		{"initiation", []byte{TypeInitiation}, TypeInitiation, nil},
		{"response", []byte{TypeResponse, 9}, TypeResponse, nil},
		{"cookie", []byte{TypeCookie}, TypeCookie, nil},
		{"data", []byte{TypeData}, TypeData, nil},
		{"zero", []byte{0}, 0, ErrMalformed},
		{"data phase 1", []byte{TypeDataPhase1}, TypeData, nil},
		{"six", []byte{6}, 0, ErrMalformed},
		{"high", []byte{0xc4}, 0, ErrMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := PacketType(tt.in)
			if tt.err != nil {
				errIs(t, err, tt.err)
				return
			}
			noErr(t, err)
			equal(t, tt.want, got)
		})
	}
}
