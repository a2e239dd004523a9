package udplink

import (
	"encoding/binary"
	"github.com/stretchr/testify/require"
	"net/netip"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"
)

func TestSockaddrRoundTrip(t *testing.T) {
	tests := []struct {
		name   string
		family int
		in     netip.AddrPort
		want   netip.AddrPort // what getSockaddr reads back
		len    uint32
		err    error
	}{
		{"v4", unix.AF_INET, netip.MustParseAddrPort("127.0.0.1:443"), netip.MustParseAddrPort("127.0.0.1:443"), sizeofSockaddr4, nil},
		{"v4 mapped on v4 socket", unix.AF_INET, netip.MustParseAddrPort("[::ffff:10.1.2.3]:1"), netip.MustParseAddrPort("10.1.2.3:1"), sizeofSockaddr4, nil},
		{"v6 on v4 socket", unix.AF_INET, netip.MustParseAddrPort("[::1]:1"), netip.AddrPort{}, 0, errAddrFamily},
		{"zero", unix.AF_INET6, netip.AddrPort{}, netip.AddrPort{}, 0, errNoAddr},
		{"v6", unix.AF_INET6, netip.MustParseAddrPort("[2001:db8::1]:65535"), netip.MustParseAddrPort("[2001:db8::1]:65535"), sizeofSockaddr6, nil},
		{"v4 on v6 socket is mapped, read back unmapped", unix.AF_INET6, netip.MustParseAddrPort("127.0.0.1:9"), netip.MustParseAddrPort("127.0.0.1:9"), sizeofSockaddr6, nil},
		{"numeric zone", unix.AF_INET6, netip.MustParseAddrPort("[fe80::1%7]:5"), netip.MustParseAddrPort("[fe80::1%7]:5"), sizeofSockaddr6, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var sa sockaddr
			n, err := putSockaddr(&sa, tt.family, tt.in)
			require.ErrorIs(t, err, tt.err)
			if err != nil {
				return
			}
			require.Equal(t, tt.len, n)
			require.Equal(t, tt.want, getSockaddr(&sa))
		})
	}
}

func TestGroSegSize(t *testing.T) {
	build := func(level, typ int32, val int32) []byte {
		b := make([]byte, unix.CmsgSpace(4))
		h := (*unix.Cmsghdr)(unsafe.Pointer(&b[0]))
		h.Level, h.Type = level, typ
		h.SetLen(unix.CmsgLen(4))
		binary.NativeEndian.PutUint32(b[unix.CmsgLen(0):], uint32(val))
		return b
	}
	gro := build(unix.IPPROTO_UDP, unix.UDP_GRO, 1452)
	other := build(unix.IPPROTO_IP, unix.IP_TOS, 3)
	tests := []struct {
		name string
		ctrl []byte
		want int
	}{
		{"none", nil, 0},
		{"gro", gro, 1452},
		{"after another cmsg", append(append([]byte{}, other...), gro...), 1452},
		{"only other", other, 0},
		{"truncated header", gro[:8], 0},
		{"bad length", func() []byte {
			b := append([]byte{}, gro...)
			(*unix.Cmsghdr)(unsafe.Pointer(&b[0])).SetLen(1000)
			return b
		}(), 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { require.Equal(t, tt.want, groSegSize(tt.ctrl)) })
	}
}
