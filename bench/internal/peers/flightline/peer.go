// Package flightline runs flightline itself as a benchmark peer, once per
// datapath, so the report compares the datapaths with each other as well as
// with the other transports:
//
//   - flightline-udp: UDP sockets (sendmmsg/recvmmsg, GSO/GRO);
//   - flightline-xdp: AF_XDP with the XDP program attached in native mode;
//   - flightline-xdp-generic: AF_XDP in generic (skb) mode.
//
// Every scenario uses the public transport API only: Listen/Bind, Dial,
// Accept, streams. Both sides authenticate with static keys made by NewKeys
// and handed to both processes in Spec.Keys; the server accepts the client's
// key only (AllowedPeers), as a real deployment would.
package flightline

import (
	"context"
	"fmt"
	"net/netip"
	"os"

	"github.com/flightline/flightline/bench/internal/peer"
	"github.com/flightline/flightline/transport"
)

// Registered peer names.
const (
	NameUDP        = "flightline-udp"
	NameXDP        = "flightline-xdp"
	NameXDPGeneric = "flightline-xdp-generic"
	// NameXDPBusyPoll is flightline-xdp with preferred busy polling on.
	NameXDPBusyPoll = "flightline-xdp-busypoll"
	// NameBBR and NameCubic are flightline-udp with the congestion
	// controller pinned (transport.Config.Congestion), so the controllers
	// are compared in one run whatever the default is.
	NameBBR   = "flightline-bbr"
	NameCubic = "flightline-cubic"
)

func init() {
	peer.Register(NameUDP, &flPeer{datapath: "udp"})
	peer.Register(NameXDP, &flPeer{datapath: "xdp", xdpMode: "native"})
	peer.Register(NameXDPGeneric, &flPeer{datapath: "xdp", xdpMode: "generic"})
	peer.Register(NameXDPBusyPoll, &flPeer{datapath: "xdp", xdpMode: "native", busyPoll: true})
	peer.Register(NameBBR, &flPeer{datapath: "udp", congestion: "bbr"})
	peer.Register(NameCubic, &flPeer{datapath: "udp", congestion: "cubic"})
}

// flPeer is flightline on one datapath. It holds no state between runs:
// each process serves or runs exactly one Spec.
type flPeer struct {
	datapath string // transport.Config.Datapath: "udp" or "xdp"
	xdpMode  string // transport.Config.XDPMode when datapath is "xdp"
	busyPoll bool   // transport.Config.XDPBusyPoll
	// congestion is transport.Config.Congestion ("" = the default).
	congestion string
}

// Serve implements peer.Peer.
func (p *flPeer) Serve(ctx context.Context, s *peer.Spec, ready func()) (peer.Result, error) {
	keys, err := decodeKeys(s.Keys, peer.ServerSide)
	if err != nil {
		return peer.Result{}, err
	}
	switch s.Scenario {
	case peer.Bulk:
		return p.serveBulk(ctx, s, keys, ready)
	case peer.Ping:
		return p.servePing(ctx, s, keys, ready)
	case peer.Scale:
		return p.serveScale(ctx, s, keys, ready)
	}
	return peer.Result{}, fmt.Errorf("%w: %q", peer.ErrUnsupported, s.Scenario)
}

// Run implements peer.Peer.
func (p *flPeer) Run(ctx context.Context, s *peer.Spec) (peer.Result, error) {
	keys, err := decodeKeys(s.Keys, peer.ClientSide)
	if err != nil {
		return peer.Result{}, err
	}
	switch s.Scenario {
	case peer.Bulk:
		return p.runBulk(ctx, s, keys)
	case peer.Ping:
		return p.runPing(ctx, s, keys)
	case peer.Scale:
		return p.runScale(ctx, s, keys)
	}
	return peer.Result{}, fmt.Errorf("%w: %q", peer.ErrUnsupported, s.Scenario)
}

// config is the transport configuration of one side: defaults everywhere
// except identity and datapath, so the benchmark measures flightline as
// shipped. ifname is the side's veth end, where AF_XDP attaches.
func (p *flPeer) config(key transport.PrivateKey, ifname string) *transport.Config {
	c := &transport.Config{
		PrivateKey: key,
		Datapath:   p.datapath,
		// Rare operational lines (fallbacks, drops of note) go to stderr,
		// which the runner forwards to its log.
		Logf:       func(format string, args ...any) { fmt.Fprintf(os.Stderr, format+"\n", args...) },
		Congestion: p.congestion,
	}
	if p.datapath == "xdp" {
		c.Interface = ifname
		c.XDPMode = p.xdpMode
		c.XDPBusyPoll = p.busyPoll
	}
	return c
}

// listen opens the server's listening endpoint on s.Server, accepting only
// the client's key. The endpoint is closed when ctx ends, which fails every
// blocked Accept, stream Read and Write with it.
func (p *flPeer) listen(ctx context.Context, s *peer.Spec, k sideKeys, tune func(*transport.Config)) (*transport.Endpoint, error) {
	cfg := p.config(k.private, s.ServerIfname)
	cfg.AllowedPeers = []transport.PublicKey{k.peer}
	if tune != nil {
		tune(cfg)
	}
	ep, err := transport.Listen(s.Server.String(), cfg)
	if err != nil {
		return nil, fmt.Errorf("%s: listen: %w", p.name(), err)
	}
	context.AfterFunc(ctx, func() { ep.Close() })
	return ep, nil
}

// bind opens the client's dial-only endpoint on host A's address, ephemeral
// port, closed when ctx ends.
func (p *flPeer) bind(ctx context.Context, s *peer.Spec, k sideKeys) (*transport.Endpoint, error) {
	ep, err := transport.Bind(netip.AddrPortFrom(s.Client, 0).String(), p.config(k.private, s.ClientIfname))
	if err != nil {
		return nil, fmt.Errorf("%s: bind: %w", p.name(), err)
	}
	context.AfterFunc(ctx, func() { ep.Close() })
	return ep, nil
}

// dial connects ep to the server and checks the connection runs on the
// datapath this peer stands for: a benchmark row labelled xdp must never
// have quietly measured UDP.
func (p *flPeer) dial(ctx context.Context, ep *transport.Endpoint, s *peer.Spec, k sideKeys) (*transport.Conn, error) {
	c, err := ep.Dial(ctx, s.Server, k.peer)
	if err != nil {
		return nil, fmt.Errorf("dial: %w", peer.CtxErr(ctx, err))
	}
	if err := p.checkDatapath(c); err != nil {
		c.CloseWithError(0, "wrong datapath")
		return nil, err
	}
	return c, nil
}

// accept waits for the next connection and checks its datapath.
func (p *flPeer) accept(ctx context.Context, ep *transport.Endpoint) (*transport.Conn, error) {
	c, err := ep.Accept(ctx)
	if err != nil {
		return nil, fmt.Errorf("accept: %w", peer.CtxErr(ctx, err))
	}
	if err := p.checkDatapath(c); err != nil {
		c.CloseWithError(0, "wrong datapath")
		return nil, err
	}
	return c, nil
}

func (p *flPeer) checkDatapath(c *transport.Conn) error {
	if got := c.Stats().Datapath; got != p.datapath {
		return fmt.Errorf("%s: connection runs on datapath %q, want %q", p.name(), got, p.datapath)
	}
	return nil
}

// name is the registered name, for error messages.
func (p *flPeer) name() string {
	switch {
	case p.congestion == "bbr":
		return NameBBR
	case p.congestion == "cubic":
		return NameCubic
	case p.datapath == "udp":
		return NameUDP
	case p.xdpMode == "generic":
		return NameXDPGeneric
	case p.busyPoll:
		return NameXDPBusyPoll
	}
	return NameXDP
}
