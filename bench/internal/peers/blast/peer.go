// Package blast registers the raw ceilings flightline is compared with: no
// protocol, no reliability, no flow control, just datagrams pushed through
// the same datapaths flightline uses, as fast as each datapath takes them.
//
//   - udp-blast: transport/udplink with GSO off (sendmmsg batches of
//     single datagrams); the receiver is a udplink.Link with GRO allowed,
//     because that is how flightline receives too.
//   - udp-gso-blast: the same link with GSO on (udplink defaults).
//   - xdp-blast: AF_XDP on both hosts (package xdp, native attach mode).
//
// All three are link.Link, so one blast implementation serves them; only the
// function that opens the link differs.
//
// Bulk: the client sends ceil(Spec.Bytes/1436) datagrams of
// link.MaxPacketSize bytes, each a 16-byte header and pattern bytes, and the
// server verifies every one. Goodput of a blast counts what arrived over the
// server's first-to-last-arrival window: a receiver that is overrun shows
// as loss (Notes["lost_pct"]), not as a slower transfer. It is a ceiling, not
// a reliable transfer. A blast is one flow: Spec.Streams is ignored.
//
// Ping: udp-blast measures the raw kernel UDP latency floor (net.UDPConn,
// Go netpoller), xdp-blast the AF_XDP floor (ReadBatch/WriteBatch on an
// xdp.Link). udp-gso-blast does not do Ping: GSO plays no part in one
// datagram each way, so it would repeat udp-blast's numbers. No blast does
// Scale.
package blast

import (
	"context"
	"fmt"
	"net/netip"

	"github.com/flightline/flightline/bench/internal/peer"
	"github.com/flightline/flightline/bpf"
	"github.com/flightline/flightline/transport/link"
	"github.com/flightline/flightline/transport/udplink"
	"github.com/flightline/flightline/xdp"
)

// Registered peer names.
const (
	NameUDP    = "udp-blast"
	NameUDPGSO = "udp-gso-blast"
	NameXDP    = "xdp-blast"
	// NameXDPBusyPoll is xdp-blast with preferred busy polling on: the
	// floor for flightline-xdp-busypoll.
	NameXDPBusyPoll = "xdp-blast-busypoll"
)

func init() {
	peer.Register(NameUDP, &blast{open: openUDP(false), ping: pingKernelUDP})
	peer.Register(NameUDPGSO, &blast{open: openUDP(true)})
	peer.Register(NameXDP, &blast{open: openXDP(xdp.BusyPollOff), ping: pingLink})
	peer.Register(NameXDPBusyPoll, &blast{open: openXDP(xdp.BusyPollRequire), ping: pingLink})
}

// opener opens the link one side of a run uses: bound to s.Server on the
// server side, to s.Client on an ephemeral port on the client side.
type opener func(s *peer.Spec, side peer.Side) (link.Link, error)

// pinger is one implementation of both sides of the Ping scenario.
type pinger interface {
	serve(ctx context.Context, s *peer.Spec, open opener, ready func()) (peer.Result, error)
	run(ctx context.Context, s *peer.Spec, open opener) (peer.Result, error)
}

// blast is one raw ceiling: a datapath and, optionally, a Ping for it.
type blast struct {
	open opener
	ping pinger // nil: Ping unsupported
}

// Serve implements peer.Peer.
func (b *blast) Serve(ctx context.Context, s *peer.Spec, ready func()) (peer.Result, error) {
	switch {
	case s.Scenario == peer.Bulk:
		return serveBulk(ctx, s, b.open, ready)
	case s.Scenario == peer.Ping && b.ping != nil:
		return b.ping.serve(ctx, s, b.open, ready)
	}
	return peer.Result{}, fmt.Errorf("%w: %q", peer.ErrUnsupported, s.Scenario)
}

// Run implements peer.Peer.
func (b *blast) Run(ctx context.Context, s *peer.Spec) (peer.Result, error) {
	switch {
	case s.Scenario == peer.Bulk:
		return runBulk(ctx, s, b.open)
	case s.Scenario == peer.Ping && b.ping != nil:
		return b.ping.run(ctx, s, b.open)
	}
	return peer.Result{}, fmt.Errorf("%w: %q", peer.ErrUnsupported, s.Scenario)
}

// localAddr is where a side binds: the server's listening address, or host
// A's address on a port the kernel picks.
func localAddr(s *peer.Spec, side peer.Side) netip.AddrPort {
	if side == peer.ServerSide {
		return s.Server
	}
	return netip.AddrPortFrom(s.Client, 0)
}

// openUDP opens flightline's UDP datapath, with or without GSO. GRO stays at
// its default (on when the kernel offers it) on both sides.
func openUDP(gso bool) opener {
	return func(s *peer.Spec, side peer.Side) (link.Link, error) {
		l, err := udplink.Listen(localAddr(s, side), udplink.Config{DisableGSO: !gso})
		if err != nil {
			return nil, fmt.Errorf("open udp link: %w", err)
		}
		return l, nil
	}
}

// openXDP opens an AF_XDP link on the side's veth end in native mode. The
// process already runs inside the host's namespace (the runner starts it
// there), which xdp.Listen requires. When AF_XDP cannot work here the error
// from xdp.Listen says why.
func openXDP(busyPoll xdp.BusyPollMode) opener {
	return func(s *peer.Spec, side peer.Side) (link.Link, error) {
		ifname := s.ClientIfname
		if side == peer.ServerSide {
			ifname = s.ServerIfname
		}
		if ifname == "" {
			return nil, fmt.Errorf("open xdp link: no interface name for the %s side in the spec", side)
		}
		l, err := xdp.Listen(xdp.Config{Interface: ifname, Addr: localAddr(s, side), Mode: bpf.ModeNative,
			BusyPoll: xdp.BusyPoll{Mode: busyPoll}})
		if err != nil {
			return nil, fmt.Errorf("open xdp link on %s: %w", ifname, err)
		}
		return l, nil
	}
}

// capsInfo describes the link that ran, for Result.Info.
func capsInfo(l link.Link) string {
	c := l.Caps()
	info := fmt.Sprintf("datapath=%s gso=%v gro=%v zerocopy=%v queues=%d", c.Datapath, c.GSO, c.GRO, c.ZeroCopy, c.Queues)
	if c.Note != "" {
		info += " (" + c.Note + ")"
	}
	return info
}
