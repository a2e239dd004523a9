package matrix

import (
	"fmt"
	"net/netip"

	"github.com/flightline/flightline/bpf"
	"github.com/flightline/flightline/testnet"
	"github.com/flightline/flightline/xdp"
)

// probeXDP reports why AF_XDP cannot run on n (nil if it can): it opens and
// closes a native-mode AF_XDP link on host A's veth end. Every AF_XDP row of
// the report then says "not available: <reason>" instead of failing runs.
func probeXDP(n *testnet.Network) error {
	return n.A.Run(func() error {
		l, err := xdp.Listen(xdp.Config{Interface: n.A.Ifname, Addr: netip.AddrPortFrom(n.A.Addr, 0), Mode: bpf.ModeNative})
		if err != nil {
			return fmt.Errorf("AF_XDP on %s: %w", n.A.Ifname, err)
		}
		return l.Close()
	})
}
