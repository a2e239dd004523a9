package blast

import (
	"encoding/binary"

	"github.com/flightline/flightline/transport/link"
)

// Every blast datagram starts with a 16-byte header:
//
//	0  uint32  kind (a magic number per datagram type)
//	4  uint32  low 32 bits of Spec.Seed, so a datagram of another run fails
//	8  uint64  sequence number (data), datagrams sent (end) or
//	           datagrams received (report)
//
// Data datagrams carry pattern bytes after it (sealed, with a tag behind
// them, in the encrypted ceiling: see sealer); a report carries 8 more
// bytes, the payload bytes the server verified. Big-endian throughout.
const (
	headerLen   = 16
	reportLen   = headerLen + 8
	datagramLen = link.MaxPacketSize
)

// kind tells datagrams apart. The control kinds exist so the client can
// learn that the server is listening before it starts its clock, and that
// the server has seen the end of the blast before it leaves.
type kind uint32

const (
	kindInvalid  kind = 0
	kindData     kind = 0x464c4244 // "FLBD": sequence number, pattern bytes
	kindHello    kind = 0x464c4248 // "FLBH": client is about to blast
	kindHelloAck kind = 0x464c4241 // "FLBA": server is counting
	kindEnd      kind = 0x464c4245 // "FLBE": blast over, value = datagrams sent
	kindReport   kind = 0x464c4252 // "FLBR": value = datagrams received
)

func (k kind) String() string {
	switch k {
	case kindData:
		return "data"
	case kindHello:
		return "hello"
	case kindHelloAck:
		return "hello-ack"
	case kindEnd:
		return "end"
	case kindReport:
		return "report"
	}
	return "invalid"
}

// putHeader writes a header into b[:headerLen].
func putHeader(b []byte, k kind, seed uint64, value uint64) {
	binary.BigEndian.PutUint32(b[0:], uint32(k))
	binary.BigEndian.PutUint32(b[4:], uint32(seed))
	binary.BigEndian.PutUint64(b[8:], value)
}

// parseHeader reads b's header; kindInvalid for a datagram that is too
// short, of an unknown kind or of another run.
func parseHeader(b []byte, seed uint64) (kind, uint64) {
	if len(b) < headerLen || binary.BigEndian.Uint32(b[4:]) != uint32(seed) {
		return kindInvalid, 0
	}
	k := kind(binary.BigEndian.Uint32(b[0:]))
	switch k {
	case kindData, kindHello, kindHelloAck, kindEnd, kindReport:
		return k, binary.BigEndian.Uint64(b[8:])
	}
	return kindInvalid, 0
}

// control builds a header-only control datagram.
func control(k kind, seed, value uint64) []byte {
	b := make([]byte, headerLen)
	putHeader(b, k, seed, value)
	return b
}

// plan is how a Bulk run's bytes are cut into datagrams: count datagrams,
// each carrying chunk bytes except a shorter last one, datagram seq at
// stream offset seq*chunk of the pattern. chunk is what fits in a datagram
// of datagramLen bytes behind the header and the sealer's tag, if any.
type plan struct {
	bytes int64
	chunk int64
	count int64
}

func newPlan(bytes int64, overhead int) plan {
	chunk := int64(datagramLen - headerLen - overhead)
	return plan{bytes: bytes, chunk: chunk, count: (bytes + chunk - 1) / chunk}
}

// payload is the number of pattern bytes datagram seq carries.
func (p plan) payload(seq int64) int {
	return int(min(p.chunk, p.bytes-seq*p.chunk))
}

// offset is where datagram seq's bytes sit in the pattern.
func (p plan) offset(seq int64) int64 { return seq * p.chunk }

func putUint64(b []byte, v uint64) { binary.BigEndian.PutUint64(b, v) }

// parseReport reads a report's received datagrams and verified bytes.
func parseReport(b []byte, seed uint64) (datagrams, bytes uint64, ok bool) {
	k, v := parseHeader(b, seed)
	if k != kindReport || len(b) != reportLen {
		return 0, 0, false
	}
	return v, binary.BigEndian.Uint64(b[headerLen:]), true
}
