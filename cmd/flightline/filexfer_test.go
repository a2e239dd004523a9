package main

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func mustHeader(t testing.TB, h header) []byte {
	t.Helper()
	b, err := encodeHeader(nil, h)
	require.NoError(t, err)
	return b
}

func TestHeaderRoundTrip(t *testing.T) {
	for _, h := range []header{
		{Name: "a", Size: 0},
		{Name: "resume.bin", Size: 7, Resume: true},
		{Name: "report.pdf", Size: 3 << 20},
		{Name: "ünïcødé ✓.txt", Size: 1},
		{Name: strings.Repeat("n", maxNameLen), Size: defaultMaxSize},
	} {
		b := mustHeader(t, h)
		// Trailing data must stay unread: it is the file.
		r := bytes.NewReader(append(b, "payload"...))
		got, err := readHeader(r, defaultMaxSize)
		require.NoError(t, err)
		require.Equal(t, h, got)
		rest, _ := io.ReadAll(r)
		require.Equal(t, "payload", string(rest))
	}
}

func TestHeaderEncodeRejects(t *testing.T) {
	for _, name := range []string{"", strings.Repeat("x", maxNameLen+1), "a\x00b", "\xff"} {
		_, err := encodeHeader(nil, header{Name: name})
		require.Error(t, err, "name %q", name)
	}
}

func TestHeaderMalformed(t *testing.T) {
	good := mustHeader(t, header{Name: "file.bin", Size: 1000})
	patch := func(i int, v byte) []byte {
		b := bytes.Clone(good)
		b[i] = v
		return b
	}
	withLen := func(n uint16) []byte {
		b := bytes.Clone(good[:fixedHeaderLen])
		binary.BigEndian.PutUint16(b[6:], n)
		return append(b, bytes.Repeat([]byte{'a'}, int(n)+8)...)
	}
	tests := []struct {
		name string
		in   []byte
		max  uint64
		want error
	}{
		{"empty", nil, 1 << 20, io.ErrUnexpectedEOF},
		{"truncated fixed part", good[:5], 1 << 20, io.ErrUnexpectedEOF},
		{"truncated name", good[:fixedHeaderLen+3], 1 << 20, io.ErrUnexpectedEOF},
		{"truncated size", good[:len(good)-1], 1 << 20, io.ErrUnexpectedEOF},
		{"bad magic", patch(0, 'X'), 1 << 20, errBadMagic},
		{"bad version", patch(4, 2), 1 << 20, errBadVersion},
		{"unknown flags", patch(5, 2), 1 << 20, errBadFlags},
		{"unknown flags with resume", patch(5, 0x81), 1 << 20, errBadFlags},
		{"zero name length", withLen(0), 1 << 20, errNameLen},
		{"name too long", withLen(maxNameLen + 1), 1 << 20, errNameLen},
		{"max name length field", withLen(0xffff), 1 << 20, errNameLen},
		{"NUL in name", patch(fixedHeaderLen+2, 0), 1 << 20, errNameBytes},
		{"invalid UTF-8", patch(fixedHeaderLen, 0xff), 1 << 20, errNameBytes},
		{"size above limit", good, 999, errTooLarge},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := readHeader(bytes.NewReader(tc.in), tc.max)
			require.ErrorIs(t, err, tc.want)
		})
	}
}

// TestHeaderReadsNoMoreThanHeader checks readHeader leaves the payload
// unread, so the receiver's copy starts at the first data byte.
func TestHeaderReadsNoMoreThanHeader(t *testing.T) {
	b := mustHeader(t, header{Name: "x", Size: 5})
	r := &countingReader{r: bytes.NewReader(append(b, 1, 2, 3))}
	_, err := readHeader(r, 10)
	require.NoError(t, err)
	require.Equal(t, len(b), r.n)
}

type countingReader struct {
	r io.Reader
	n int
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += n
	return n, err
}

func TestSanitizeName(t *testing.T) {
	tests := []struct {
		in, want string // want "" means refused
	}{
		{"report.pdf", "report.pdf"},
		{"dir/sub/report.pdf", "report.pdf"},
		{"/etc/passwd", "passwd"},
		{"../../etc/shadow", "shadow"},
		{`..\..\windows\system32\evil.dll`, "evil.dll"},
		{"a/b/", ""},
		{"..", ""},
		{".", ""},
		{"../..", ""},
		{"", ""},
		{"/", ""},
		{".hidden", ""},
		{".profile", ""},
		{"dir/.bashrc", ""},
		{"...", ""},
		{"c1\u0085next", ""},
		{"csi\u009b", ""},
		{"evil\u202etxt.exe", ""},
		{"iso\u2066late", ""},
		{"lrm\u200e", ""},
		{"alm\u061c", ""},
		{"a.b.c", "a.b.c"},
		{"x/" + tempPrefix + "abc", ""},
		{"tab\tname", ""},
		{"new\nline", ""},
		{"del\x7f", ""},
		{"bad\xffutf8", ""},
		{"spaces are fine.txt", "spaces are fine.txt"},
		{"ünï.txt", "ünï.txt"},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			got, err := sanitizeName(tc.in)
			if tc.want == "" {
				require.Error(t, err, "got %q", got)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tc.want, got)
		})
	}
}

func TestXferCodeText(t *testing.T) {
	for code := uint64(xferBadHeader); code <= xferDigest; code++ {
		require.NotContains(t, xferCodeText(code), "code", "code %d has no text", code)
	}
	require.Contains(t, xferCodeText(99), "code 99")
}

// FuzzDecodeHeader checks readHeader never panics, never accepts a header it
// could not have encoded, and that what it accepts round-trips.
func FuzzDecodeHeader(f *testing.F) {
	f.Add(mustHeader(f, header{Name: "a.txt", Size: 42}), uint64(1<<20))
	f.Add([]byte("FLXF\x01\x00\xff\xff"), uint64(1<<20))
	f.Add([]byte{}, uint64(0))
	f.Fuzz(func(t *testing.T, in []byte, max uint64) {
		h, err := readHeader(bytes.NewReader(in), max)
		if err != nil {
			for _, known := range []error{io.ErrUnexpectedEOF, errBadMagic, errBadVersion, errBadFlags, errNameLen, errNameBytes, errTooLarge} {
				if errors.Is(err, known) {
					return
				}
			}
			t.Fatalf("unclassified error: %v", err)
		}
		if h.Size > max {
			t.Fatalf("accepted size %d > max %d", h.Size, max)
		}
		b, err := encodeHeader(nil, h)
		if err != nil {
			t.Fatalf("accepted header %+v does not encode: %v", h, err)
		}
		if !bytes.Equal(b, in[:len(b)]) {
			t.Fatalf("round trip differs:\n got %x\nwant %x", b, in[:len(b)])
		}
	})
}
