package wire

import (
	"encoding/binary"
	"fmt"
)

// Packet types: the first byte of every flightline datagram. Initiation,
// Response and Cookie are handshake messages (laid out elsewhere); Data
// carries encrypted frames behind a DataHeader. A data packet's type byte
// also carries its key phase (docs/protocol.md §5.3): TypeData for phase 0,
// TypeDataPhase1 for phase 1. PacketType reports both as TypeData.
const (
	TypeInitiation byte = 1
	TypeResponse   byte = 2
	TypeCookie     byte = 3
	TypeData       byte = 4
	TypeDataPhase1 byte = 5
)

// MaxPacketNumber is the largest packet number either side may use. The
// header carries 64 bits, but packet numbers also travel in ACK frames as
// varints, which stop at MaxVarint: a larger number could be received but
// never acknowledged (encoding its ACK would be our bug, not the peer's).
// ParseDataHeader rejects anything above it, before decryption, so no
// peer-chosen packet number outside the varint range reaches the replay
// window or the ACK state.
const MaxPacketNumber = MaxVarint

// DataHeaderLen is the size of an encoded data-packet header:
// type(1) | connID(8) | packetNumber(8).
const DataHeaderLen = 17

// DataHeader is the cleartext header of a data packet. It is not encrypted,
// but the caller authenticates it as AEAD associated data, so a receiver may
// only trust it after the payload decrypted successfully.
type DataHeader struct {
	// ConnID is the receiver's connection identifier, used to route the
	// packet to its connection before decryption.
	ConnID uint64
	// PN is the full 64-bit packet number, never truncated on the wire, so
	// the receiver needs no reconstruction; it is never reused within a
	// connection and direction, so the crypto layer can derive the nonce
	// from it.
	PN uint64
	// KeyPhase (0 or 1) is the low bit of the key generation that sealed
	// the packet (docs/protocol.md §5.3). It is the type byte's low bit on
	// the wire: 4 for phase 0, 5 for phase 1.
	KeyPhase uint8
}

// AppendDataHeader appends the DataHeaderLen-byte encoding of h to b.
func AppendDataHeader(b []byte, h DataHeader) []byte {
	b = append(b, TypeData|h.KeyPhase&1)
	b = binary.BigEndian.AppendUint64(b, h.ConnID)
	return binary.BigEndian.AppendUint64(b, h.PN)
}

// ParseDataHeader decodes the header at the start of b; the ciphertext
// follows at b[DataHeaderLen:]. It fails if b is shorter than DataHeaderLen
// (ErrTruncated), is not a data packet of either key phase, or carries a packet number above
// MaxPacketNumber (ErrMalformed).
func ParseDataHeader(b []byte) (DataHeader, error) {
	if len(b) < DataHeaderLen {
		return DataHeader{}, fmt.Errorf("wire: data header: %d of %d bytes: %w", len(b), DataHeaderLen, ErrTruncated)
	}
	if b[0] != TypeData && b[0] != TypeDataPhase1 {
		return DataHeader{}, fmt.Errorf("wire: data header: packet type %d is not data: %w", b[0], ErrMalformed)
	}
	h := DataHeader{
		ConnID:   binary.BigEndian.Uint64(b[1:9]),
		PN:       binary.BigEndian.Uint64(b[9:17]),
		KeyPhase: b[0] & 1,
	}
	if h.PN > MaxPacketNumber {
		return DataHeader{}, fmt.Errorf("wire: data header: packet number %d above %d: %w", h.PN, uint64(MaxPacketNumber), ErrMalformed)
	}
	return h, nil
}

// PacketType returns the type of a datagram so the receive loop can
// dispatch it: the type byte, except that a data packet of either key phase
// (TypeData, TypeDataPhase1) is reported as TypeData. It fails on an empty
// datagram (ErrTruncated) or a type other than the defined ones
// (ErrMalformed). It does not check the length of the rest of the packet.
func PacketType(b []byte) (byte, error) {
	if len(b) == 0 {
		return 0, fmt.Errorf("wire: packet type: empty datagram: %w", ErrTruncated)
	}
	switch t := b[0]; t {
	case TypeInitiation, TypeResponse, TypeCookie, TypeData:
		return t, nil
	case TypeDataPhase1:
		return TypeData, nil
	default:
		return 0, fmt.Errorf("wire: packet type: unknown type %d: %w", t, ErrMalformed)
	}
}
