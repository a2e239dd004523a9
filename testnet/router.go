package testnet

import (
	"fmt"
	"net"
	"net/netip"
	"os"
)

// setupRouter builds A <-> R <-> B with Config.Router: A in 10.x.y.0/25 (.1),
// B in 10.x.y.128/25 (.129), R at .126 and .254 forwarding between them.
// Nothing is static at layer 2: hosts and R resolve each other with ARP.
func (n *Network) setupRouter(mac func(byte) net.HardwareAddr,
	veth func(if1, ns1 string, mac1 net.HardwareAddr, q1 string, if2, ns2 string, mac2 net.HardwareAddr, q2 string) error) error {
	cfg := n.cfg
	a4 := n.A.Addr.As4()
	base := [4]byte{a4[0], a4[1], a4[2], 0}
	addr := func(k byte) netip.Addr { b := base; b[3] = k; return netip.AddrFrom4(b) }
	n.A.Addr, n.B.Addr = addr(1), addr(129)
	n.A.Addr6, n.B.Addr6 = netip.Addr{}, netip.Addr{}
	n.A.Gateway, n.B.Gateway = addr(126), addr(254)
	rMAC := [2]net.HardwareAddr{mac(5), mac(6)}
	n.A.PeerMAC, n.B.PeerMAC = rMAC[0], rMAC[1]
	n.router = n.ID + "r"
	rif := [2]string{n.ID + "ra", n.ID + "rb"}
	if err := run("ip", "netns", "add", n.router); err != nil {
		return err
	}
	q := fmt.Sprint(cfg.Queues)
	if err := veth(n.A.Ifname, n.A.NS, n.A.MAC, q, rif[0], n.router, rMAC[0], "1"); err != nil {
		return err
	}
	if err := veth(rif[1], n.router, rMAC[1], "1", n.B.Ifname, n.B.NS, n.B.MAC, q); err != nil {
		return err
	}
	if err := ipBatch(n.router, []string{
		fmt.Sprintf("addr add %s/25 dev %s", n.A.Gateway, rif[0]),
		fmt.Sprintf("addr add %s/25 dev %s", n.B.Gateway, rif[1]),
		"link set lo up",
		fmt.Sprintf("link set %s up", rif[0]),
		fmt.Sprintf("link set %s up", rif[1]),
	}); err != nil {
		return err
	}
	if err := runInNetns(n.router, func() error {
		if err := os.WriteFile("/proc/sys/net/ipv4/ip_forward", []byte("1"), 0); err != nil {
			return fmt.Errorf("enable forwarding in %s: %w", n.router, err)
		}
		if cfg.TxChecksumOffload {
			return nil
		}
		for _, ifn := range rif {
			if err := setTxChecksum(ifn, false); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		return err
	}
	for _, h := range []*Host{n.A, n.B} {
		if err := ipBatch(h.NS, []string{
			fmt.Sprintf("addr add %s/25 dev %s", h.Addr, h.Ifname),
			"link set lo up",
			fmt.Sprintf("link set %s up", h.Ifname),
			fmt.Sprintf("route add default via %s dev %s", h.Gateway, h.Ifname),
		}); err != nil {
			return err
		}
		if err := h.Run(func() error {
			ifc, err := net.InterfaceByName(h.Ifname)
			if err != nil {
				return fmt.Errorf("look up %s: %w", h.Ifname, err)
			}
			h.Ifindex = ifc.Index
			if !cfg.TxChecksumOffload {
				return setTxChecksum(h.Ifname, false)
			}
			return nil
		}); err != nil {
			return err
		}
	}
	if err := waitUp(n.router, rif[:]...); err != nil {
		return err
	}
	for _, h := range []*Host{n.A, n.B} {
		if err := waitUp(h.NS, h.Ifname); err != nil {
			return err
		}
	}
	return nil
}
