package transport

import (
	"context"
	"fmt"
	"net/netip"

	"github.com/flightline/flightline/transport/udplink"
)

// Listen opens a UDP endpoint on addr (for example "127.0.0.1:4242" or
// "[::]:0") that accepts connections. cfg.PrivateKey is the identity peers
// dial; see Config for defaults.
func Listen(addr string, cfg *Config) (*Endpoint, error) {
	return open(addr, cfg, true)
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
	var logf func(string, ...any)
	if cfg != nil {
		logf = cfg.Logf
	}
	l, err := udplink.Listen(ap, udplink.Config{Logf: logf})
	if err != nil {
		return nil, fmt.Errorf("listen %v: %w", ap, err)
	}
	ep, err := NewEndpoint(l, cfg, listening)
	if err != nil {
		l.Close()
		return nil, err
	}
	return ep, nil
}

// Endpoint returns the endpoint the connection runs on.
func (c *Conn) Endpoint() *Endpoint { return c.ep }
