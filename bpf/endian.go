package bpf

import (
	"encoding/binary"
)

// hostU16 reads b in host byte order, as a BPF half-word load does.
func hostU16(b [2]byte) uint16 { return binary.NativeEndian.Uint16(b[:]) }
