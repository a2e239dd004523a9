package abort

import (
	"context"
	"fmt"
	"net/netip"

	"github.com/flightline/flightline/testnet"
	"github.com/flightline/flightline/transport"
)

// session is one flightline connection across a testnet network: the
// sender (client) on host A, the receiver (server) on host B.
type session struct {
	srv, cli *transport.Endpoint
	cc, sc   *transport.Conn
}

// connect opens both endpoints inside their hosts' namespaces and
// handshakes. Both use the UDP datapath with the invariant checker off, as
// in production.
func connect(ctx context.Context, n *testnet.Network) (_ *session, err error) {
	key, err := transport.GenerateKey()
	if err != nil {
		return nil, fmt.Errorf("abort: server key: %w", err)
	}
	s := &session{}
	defer func() {
		if err != nil {
			s.close()
		}
	}()
	err = n.B.Run(func() error {
		var err error
		s.srv, err = transport.Listen(netip.AddrPortFrom(n.B.Addr, 0).String(),
			&transport.Config{PrivateKey: key, Datapath: "udp"})
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("abort: listen on %s: %w", n.B.Addr, err)
	}
	err = n.A.Run(func() error {
		var err error
		s.cli, err = transport.Bind(netip.AddrPortFrom(n.A.Addr, 0).String(), &transport.Config{Datapath: "udp"})
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("abort: bind on %s: %w", n.A.Addr, err)
	}
	accepted := make(chan error, 1)
	go func() {
		var err error
		s.sc, err = s.srv.Accept(ctx)
		accepted <- err
	}()
	s.cc, err = s.cli.Dial(ctx, s.srv.LocalAddr(), s.srv.PublicKey())
	if err != nil {
		s.srv.Close() // ends the Accept
		<-accepted
		return nil, fmt.Errorf("abort: dial %v: %w", s.srv.LocalAddr(), err)
	}
	if err := <-accepted; err != nil {
		return nil, fmt.Errorf("abort: accept: %w", err)
	}
	return s, nil
}

// close closes the connections and endpoints; it is safe on a partly
// connected session and ends every blocked stream call.
func (s *session) close() {
	for _, c := range []*transport.Conn{s.cc, s.sc} {
		if c != nil {
			c.CloseWithError(0, "benchmark done")
		}
	}
	for _, e := range []*transport.Endpoint{s.cli, s.srv} {
		if e != nil {
			e.Close()
		}
	}
}
