package main

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"unicode/utf8"
)

// File-transfer stream format. Every stream carries exactly one file:
//
//	sender -> receiver:
//	  magic    [4]byte  "FLXF"
//	  version  uint8    headerVersion (1)
//	  flags    uint8    flagResume (0x01) or 0; receivers reject unknown bits
//	  nameLen  uint16   big endian, 1..maxNameLen
//	  name     [nameLen]byte  UTF-8, no NUL
//	  size     uint64   big endian, <= the receiver's limit
//	  data     [size]byte, then FIN
//	receiver -> sender:
//	  digest   [32]byte SHA-256 of the data as written, then FIN
//
// With flagResume (see resume.go) the receiver first answers the header
// with an offer (uint64 length, SHA-256 of that prefix of its partial
// file), the sender answers with the uint64 offset it starts from (the
// offered length or 0), sends the data from there and, before FIN, the
// SHA-256 of the whole file.
//
// A receiver that refuses a transfer resets both directions of the stream
// with one of the xfer* codes below instead of sending the digest, so the
// sender can print why.
const (
	headerMagic   = "FLXF"
	headerVersion = 1
	// fixedHeaderLen is magic, version, flags and nameLen: what a receiver
	// reads before it knows how long the name is.
	fixedHeaderLen = 4 + 1 + 1 + 2
	// maxNameLen is NAME_MAX on Linux: longer names cannot be created anyway,
	// and the cap bounds the allocation a peer can make us do.
	maxNameLen = 255
	// digestLen is the length of the receiver's answer.
	digestLen = 32
)

// Stream reset codes a receiver uses to refuse a transfer. They are
// application codes, far below transport.CodeInternal.
const (
	xferBadHeader = 1  // malformed header or unsupported version
	xferBadName   = 2  // name empty or unusable after sanitising
	xferExists    = 3  // file exists and --force was not given
	xferTooLarge  = 4  // declared size above the receiver's limit
	xferShort     = 5  // stream ended before size bytes, or carried more
	xferIO        = 6  // receiver could not write the file
	xferShutdown  = 7  // receiver is shutting down
	xferTimeout   = 8  // no complete header within the receiver's --header-timeout
	xferPeerLimit = 9  // the sender's per-peer stream or byte limit is reached
	xferDigest    = 10 // resumed file's SHA-256 differs from the sender's; partial discarded
)

// xferCodeText explains a refusal code to the sender's operator.
func xferCodeText(code uint64) string {
	switch code {
	case xferBadHeader:
		return "receiver rejected the header"
	case xferBadName:
		return "receiver rejected the file name"
	case xferExists:
		return "file already exists on the receiver (it needs --force to overwrite)"
	case xferTooLarge:
		return "file is larger than the receiver accepts"
	case xferShort:
		return "receiver got a different number of bytes than announced"
	case xferIO:
		return "receiver could not write the file"
	case xferShutdown:
		return "receiver is shutting down"
	case xferTimeout:
		return "receiver timed out waiting for the transfer header"
	case xferPeerLimit:
		return "receiver's per-peer limit reached (too many concurrent files or bytes from this sender; retry later)"
	case xferDigest:
		return "receiver's SHA-256 of the whole file differs from ours (its partial file was damaged, or the file changed between attempts); it discarded the partial: send again"
	}
	return fmt.Sprintf("receiver reset the stream (code %d)", code)
}

// header is the decoded transfer header.
type header struct {
	Name string
	Size uint64
	// Resume (flagResume) asks for a resume offer before the data.
	Resume bool
}

// Header decoding errors. errTruncated wraps io.ErrUnexpectedEOF so callers
// can tell a peer that hung up from one that sent garbage.
var (
	errBadMagic   = errors.New("bad magic: not a flightline file transfer")
	errBadVersion = errors.New("unsupported header version")
	errBadFlags   = errors.New("unknown header flags")
	errNameLen    = fmt.Errorf("name length must be 1..%d", maxNameLen)
	errNameBytes  = errors.New("name is not valid UTF-8 or contains NUL")
	errTooLarge   = errors.New("declared size above limit")
)

// encodeHeader appends the wire form of h to dst.
func encodeHeader(dst []byte, h header) ([]byte, error) {
	if len(h.Name) == 0 || len(h.Name) > maxNameLen {
		return dst, fmt.Errorf("encode header: %q: %w", h.Name, errNameLen)
	}
	if !utf8.ValidString(h.Name) || strings.IndexByte(h.Name, 0) >= 0 {
		return dst, fmt.Errorf("encode header: %q: %w", h.Name, errNameBytes)
	}
	dst = append(dst, headerMagic...)
	var flags byte
	if h.Resume {
		flags |= flagResume
	}
	dst = append(dst, headerVersion, flags)
	dst = binary.BigEndian.AppendUint16(dst, uint16(len(h.Name)))
	dst = append(dst, h.Name...)
	dst = binary.BigEndian.AppendUint64(dst, h.Size)
	return dst, nil
}

// readHeader reads one header from r. It checks the fixed part and the name
// length before allocating the name, and rejects sizes above maxSize, so a
// peer cannot make the receiver allocate or reserve more than it allows.
// It reads exactly the header's bytes and nothing after them.
func readHeader(r io.Reader, maxSize uint64) (header, error) {
	var fixed [fixedHeaderLen]byte
	if _, err := io.ReadFull(r, fixed[:]); err != nil {
		return header{}, fmt.Errorf("read header: %w", truncated(err))
	}
	if string(fixed[:4]) != headerMagic {
		return header{}, fmt.Errorf("read header: %w", errBadMagic)
	}
	if fixed[4] != headerVersion {
		return header{}, fmt.Errorf("read header: version %d: %w", fixed[4], errBadVersion)
	}
	if fixed[5]&^flagResume != 0 {
		return header{}, fmt.Errorf("read header: flags %#x: %w", fixed[5], errBadFlags)
	}
	nameLen := int(binary.BigEndian.Uint16(fixed[6:]))
	if nameLen == 0 || nameLen > maxNameLen {
		return header{}, fmt.Errorf("read header: name length %d: %w", nameLen, errNameLen)
	}
	rest := make([]byte, nameLen+8)
	if _, err := io.ReadFull(r, rest); err != nil {
		return header{}, fmt.Errorf("read header: %w", truncated(err))
	}
	name := string(rest[:nameLen])
	if !utf8.ValidString(name) || strings.IndexByte(name, 0) >= 0 {
		return header{}, fmt.Errorf("read header: %w", errNameBytes)
	}
	size := binary.BigEndian.Uint64(rest[nameLen:])
	if size > maxSize {
		return header{}, fmt.Errorf("read header: size %d > %d: %w", size, maxSize, errTooLarge)
	}
	return header{Name: name, Size: size, Resume: fixed[5]&flagResume != 0}, nil
}

// truncated turns a clean EOF in the middle of a header into
// io.ErrUnexpectedEOF: any EOF before the header is complete is a truncation.
func truncated(err error) error {
	if errors.Is(err, io.EOF) {
		return io.ErrUnexpectedEOF
	}
	return err
}

// sanitizeName turns a sender-chosen name into a safe file name inside the
// receiver's directory: only the last path element survives (either slash
// counts as a separator, so Windows-style names are handled too), and names
// that would address the directory itself or its parent, hidden files
// (a leading dot: .profile, .bashrc, .ssh — and our own temporaries), or
// contain control characters (C0, DEL, C1) or bidirectional-text controls
// (which make a name display as another, "evil\u202Etxt.exe") are refused.
func sanitizeName(name string) (string, error) {
	if i := strings.LastIndexAny(name, `/\`); i >= 0 {
		name = name[i+1:]
	}
	switch {
	case name == "", name == ".", name == "..":
		return "", fmt.Errorf("name %q: no usable file name", name)
	case strings.HasPrefix(name, "."):
		return "", fmt.Errorf("name %q: hidden files (leading dot) are refused", name)
	case len(name) > maxNameLen:
		return "", fmt.Errorf("name %q: longer than %d bytes", name, maxNameLen)
	case !utf8.ValidString(name):
		return "", fmt.Errorf("name %q: not valid UTF-8", name)
	}
	for _, r := range name {
		if unsafeRune(r) {
			return "", fmt.Errorf("name %q: contains control or bidirectional-text character %U", name, r)
		}
	}
	return name, nil
}

// unsafeRune reports whether r must never reach a terminal or a file name
// raw: C0 controls, DEL, C1 controls (some terminals act on them), and the
// Unicode bidirectional-text controls (they reorder what is displayed).
func unsafeRune(r rune) bool {
	switch {
	case r < 0x20, r == 0x7f, r >= 0x80 && r <= 0x9f:
		return true
	case r == 0x061c, r == 0x200e, r == 0x200f, r >= 0x202a && r <= 0x202e, r >= 0x2066 && r <= 0x2069:
		return true
	}
	return false
}

// displayName makes peer-chosen text safe to print: unsafe runes (see
// unsafeRune) and invalid UTF-8 are escaped Go-style (\u202e, \x85), so a
// name can neither drive the terminal nor display as another name. Text
// that is already %q-quoted passes unchanged.
func displayName(s string) string {
	var b strings.Builder
	for i, r := range s {
		switch {
		case r == utf8.RuneError && !strings.HasPrefix(s[i:], "\uFFFD"):
			fmt.Fprintf(&b, "\\x%02x", s[i])
		case unsafeRune(r):
			q := strconv.QuoteRune(r)
			b.WriteString(q[1 : len(q)-1])
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}

// tempPrefix starts the names of files still being received. A complete,
// verified file is renamed to its real name, so a crashed transfer never
// leaves a truncated file under the real name.
const tempPrefix = ".flightline-"
