package transport

import (
	"context"
	"fmt"
	"net"
	"net/netip"

	"github.com/flightline/flightline/bpf"
	"github.com/flightline/flightline/transport/link"
	"github.com/flightline/flightline/transport/udplink"
	"github.com/flightline/flightline/xdp"
)

// openLink picks and opens the datapath for ap according to c.Datapath.
func openLink(ap netip.AddrPort, c *Config) (link.Link, error) {
	if c.Datapath != "udp" {
		ifname, err := interfaceFor(ap.Addr(), c.Interface)
		if err == nil {
			err = xdp.Probe(ifname)
		}
		if err == nil {
			xc := xdp.Config{Interface: ifname, Addr: ap, Mode: xdpMode(c.XDPMode), Logf: c.Logf}
			if c.XDPBusyPoll {
				xc.BusyPoll.Mode = xdp.BusyPollPrefer
			}
			l, xerr := xdp.Listen(xc)
			if xerr == nil {
				return l, nil
			}
			err = xerr
		}
		if c.Datapath == "xdp" {
			return nil, fmt.Errorf("listen %v: datapath xdp: %w", ap, err)
		}
		c.Logf("flightline: datapath auto: using udp: %v", err)
	}
	l, err := udplink.Listen(ap, udplink.Config{Logf: c.Logf})
	if err != nil {
		return nil, fmt.Errorf("listen %v: %w", ap, err)
	}
	return l, nil
}

func xdpMode(s string) bpf.Mode {
	switch s {
	case "native":
		return bpf.ModeNative
	case "generic":
		return bpf.ModeGeneric
	}
	return bpf.ModeAuto
}

// interfaceFor returns the interface to run AF_XDP on for a local address.
func interfaceFor(a netip.Addr, configured string) (string, error) {
	if configured != "" {
		return configured, nil
	}
	if a.IsUnspecified() {
		return "", fmt.Errorf("address %v is unspecified: set Interface to use AF_XDP", a)
	}
	if a.IsLoopback() {
		return "", fmt.Errorf("address %v is on loopback", a)
	}
	ifs, err := net.Interfaces()
	if err != nil {
		return "", fmt.Errorf("list interfaces: %w", err)
	}
	for _, ifc := range ifs {
		addrs, _ := ifc.Addrs()
		for _, ad := range addrs {
			if p, err := netip.ParsePrefix(ad.String()); err == nil && p.Addr() == a.Unmap() {
				return ifc.Name, nil
			}
		}
	}
	return "", fmt.Errorf("no interface has address %v", a)
}

// Listen opens a UDP endpoint on addr (for example "127.0.0.1:4242" or
// "[::]:0") that accepts connections. cfg.PrivateKey is the identity peers
// dial; see Config for defaults.
func Listen(addr string, cfg *Config) (*Endpoint, error) {
	return open(addr, cfg, true)
}

// Bind opens an endpoint on addr that only dials: it accepts no incoming
// connections. Use it to choose the local address or interface (and so the
// datapath) a dialer sends from.
func Bind(addr string, cfg *Config) (*Endpoint, error) {
	return open(addr, cfg, false)
}

// Dial opens a non-listening endpoint on an ephemeral port and connects to
// the endpoint at addr with static key remote. Closing the returned
// connection does not close the endpoint; use Conn.Endpoint().Close.
func Dial(ctx context.Context, addr string, remote PublicKey, cfg *Config) (*Conn, error) {
	to, err := netip.ParseAddrPort(addr)
	if err != nil {
		return nil, fmt.Errorf("dial: parse address %q: %w", addr, err)
	}
	local := "0.0.0.0:0"
	if to.Addr().Is6() && !to.Addr().Is4In6() {
		local = "[::]:0"
	}
	ep, err := open(local, cfg, false)
	if err != nil {
		return nil, err
	}
	c, err := ep.Dial(ctx, to, remote)
	if err != nil {
		ep.Close()
		return nil, err
	}
	return c, nil
}

func open(addr string, cfg *Config, listening bool) (*Endpoint, error) {
	ap, err := netip.ParseAddrPort(addr)
	if err != nil {
		return nil, fmt.Errorf("listen: parse address %q: %w", addr, err)
	}
	c, err := cfg.populate()
	if err != nil {
		return nil, err
	}
	l, err := openLink(ap, c)
	if err != nil {
		return nil, err
	}
	ep, err := NewEndpoint(l, c, listening)
	if err != nil {
		l.Close()
		return nil, err
	}
	return ep, nil
}

// Endpoint returns the endpoint the connection runs on.
func (c *Conn) Endpoint() *Endpoint { return c.ep }
