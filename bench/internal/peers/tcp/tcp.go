// Package tcp is the kernel TCP peer: Go's net package over the testnet
// veth, with the kernel's default congestion control and Go's defaults
// (TCP_NODELAY on). It is the baseline every userspace transport is
// measured against, so it is configured as an application would leave it.
//
// Bulk uses one connection per stream, Ping one connection, Scale one
// connection per Spec.Conns, each checked with one echo.
package tcp

import (
	"context"
	"fmt"
	"golang.org/x/sys/unix"
	"io"
	"net"
	"os"
	"strings"
	"syscall"

	"github.com/flightline/flightline/bench/internal/peer"
)

// Names the peer registers: Name runs with the namespace's default
// congestion control (what an application gets; bbr on the benchmark
// machine), NameCubic pins CUBIC per socket (TCP_CONGESTION) so loss-based
// controllers can be compared like for like.
const (
	Name      = "tcp"
	NameCubic = "tcp-cubic"
)

func init() {
	peer.Register(Name, Peer{})
	peer.Register(NameCubic, Peer{})
}

// congestionFor is the TCP_CONGESTION a run's sockets set; "" = default.
func congestionFor(s *peer.Spec) string {
	if s.Peer == NameCubic {
		return "cubic"
	}
	return ""
}

// dialControl sets up a client socket before it binds: IP_BIND_ADDRESS_NO_PORT
// so binding to host A's address leaves the port to connect time, where the
// kernel picks it per destination (without it, bind(addr:0) needs a port
// unused by every socket, and a scale run's 10k connections, thousands in
// TIME_WAIT from the previous repetition, exhaust the ephemeral range), and
// the congestion control cc ("" = default).
func dialControl(cc string) func(network, address string, c syscall.RawConn) error {
	return func(network, address string, c syscall.RawConn) error {
		var serr error
		if err := c.Control(func(fd uintptr) {
			if e := unix.SetsockoptInt(int(fd), unix.IPPROTO_IP, unix.IP_BIND_ADDRESS_NO_PORT, 1); e != nil {
				serr = fmt.Errorf("set IP_BIND_ADDRESS_NO_PORT: %w", e)
				return
			}
			if cc != "" {
				if e := unix.SetsockoptString(int(fd), unix.IPPROTO_TCP, unix.TCP_CONGESTION, cc); e != nil {
					serr = fmt.Errorf("set TCP_CONGESTION %s: %w", cc, e)
				}
			}
		}); err != nil {
			return err
		}
		return serr
	}
}

// setCongestion returns a socket Control function that sets cc (no-op for "").
func setCongestion(cc string) func(network, address string, c syscall.RawConn) error {
	if cc == "" {
		return nil
	}
	return func(network, address string, c syscall.RawConn) error {
		var serr error
		if err := c.Control(func(fd uintptr) {
			serr = unix.SetsockoptString(int(fd), unix.IPPROTO_TCP, unix.TCP_CONGESTION, cc)
		}); err != nil {
			return err
		}
		if serr != nil {
			return fmt.Errorf("set TCP_CONGESTION %s: %w", cc, serr)
		}
		return nil
	}
}

// chunk is the size of each bulk write: large enough that the per-syscall
// cost is amortized, as any bulk sender on a kernel socket would.
const chunk = 256 << 10

// Peer implements peer.Peer over kernel TCP.
type Peer struct{}

// Serve implements peer.Peer.
func (Peer) Serve(ctx context.Context, s *peer.Spec, ready func()) (peer.Result, error) {
	var (
		r   peer.Result
		err error
	)
	switch s.Scenario {
	case peer.Bulk:
		r, err = serveBulk(ctx, s, ready)
	case peer.Ping:
		r, err = servePing(ctx, s, ready)
	case peer.Scale:
		r, err = serveScale(ctx, s, ready)
	default:
		return peer.Result{}, fmt.Errorf("%w: %s", peer.ErrUnsupported, s.Scenario)
	}
	r.Info = info(s, r.Info)
	return r, err
}

// Run implements peer.Peer.
func (Peer) Run(ctx context.Context, s *peer.Spec) (peer.Result, error) {
	var (
		r   peer.Result
		err error
	)
	switch s.Scenario {
	case peer.Bulk:
		r, err = runBulk(ctx, s)
	case peer.Ping:
		r, err = runPing(ctx, s)
	case peer.Scale:
		r, err = runScale(ctx, s)
	default:
		return peer.Result{}, fmt.Errorf("%w: %s", peer.ErrUnsupported, s.Scenario)
	}
	r.Info = info(s, r.Info)
	return r, err
}

func serveBulk(ctx context.Context, s *peer.Spec, ready func()) (peer.Result, error) {
	ln, err := listen(ctx, s)
	if err != nil {
		return peer.Result{}, err
	}
	defer ln.Close()
	conns := newConnSet(ctx)
	// Closing after the last ack is graceful: every byte the client sent
	// has been read, so the kernel sends FIN, not RST, and delivers the ack.
	defer conns.close()
	ready()
	return peer.BulkServer(ctx, s, func(ctx context.Context) (io.ReadWriter, error) {
		c, err := accept(ctx, ln)
		if err != nil {
			return nil, err
		}
		conns.add(c)
		return c, nil
	}, nil)
}

func runBulk(ctx context.Context, s *peer.Spec) (peer.Result, error) {
	conns := newConnSet(ctx)
	defer conns.close()
	d := dialer(s)
	rtts := sampleRTT(ctx, conns)
	r, err := peer.BulkClient(ctx, s, func(ctx context.Context, _ int) (io.ReadWriter, error) {
		c, err := d.DialContext(ctx, "tcp", s.Server.String())
		if err != nil {
			return nil, fmt.Errorf("dial %v: %w", s.Server, err)
		}
		if !conns.add(c) {
			return nil, ctx.Err()
		}
		return c, nil
	}, nil, chunk)
	meanRTT := rtts()
	r.Notes = retransNotes(conns.snapshot())
	if r.Notes != nil && meanRTT > 0 && r.Notes["min_rtt_us"] > 0 {
		r.Notes["mean_srtt_us"] = meanRTT
		r.Notes["rtt_inflation"] = meanRTT / r.Notes["min_rtt_us"]
	}
	return r, err
}

func servePing(ctx context.Context, s *peer.Spec, ready func()) (peer.Result, error) {
	ln, err := listen(ctx, s)
	if err != nil {
		return peer.Result{}, err
	}
	defer ln.Close()
	conns := newConnSet(ctx)
	defer conns.close()
	ready()
	c, err := accept(ctx, ln)
	if err != nil {
		return peer.Result{}, fmt.Errorf("accept: %w", err)
	}
	conns.add(c)
	return peer.PingServer(ctx, s, c)
}

func runPing(ctx context.Context, s *peer.Spec) (peer.Result, error) {
	conns := newConnSet(ctx)
	defer conns.close()
	d := dialer(s)
	c, err := d.DialContext(ctx, "tcp", s.Server.String())
	if err != nil {
		return peer.Result{}, fmt.Errorf("dial %v: %w", s.Server, err)
	}
	if !conns.add(c) {
		return peer.Result{}, ctx.Err()
	}
	r, err := peer.PingClient(ctx, s, c)
	r.Notes = retransNotes(conns.snapshot())
	return r, err
}

// listen listens on s.Server; the listener closes when ctx ends, which
// unblocks Accept.
func listen(ctx context.Context, s *peer.Spec) (net.Listener, error) {
	// Accepted sockets inherit the listener's congestion control.
	lc := net.ListenConfig{Control: setCongestion(congestionFor(s))}
	ln, err := lc.Listen(ctx, "tcp", s.Server.String())
	if err != nil {
		return nil, fmt.Errorf("listen %v: %w", s.Server, err)
	}
	context.AfterFunc(ctx, func() { ln.Close() })
	return ln, nil
}

// accept returns the next connection, or ctx's error when the listener was
// closed because ctx ended (more useful than "use of closed connection").
func accept(ctx context.Context, ln net.Listener) (net.Conn, error) {
	c, err := ln.Accept()
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, err
	}
	return c, nil
}

// dialer dials from host A's address, so the connection takes the testnet
// path whatever the namespace's routes say.
func dialer(s *peer.Spec) *net.Dialer {
	return &net.Dialer{LocalAddr: &net.TCPAddr{IP: s.Client.AsSlice()}, Control: dialControl(congestionFor(s))}
}

// info describes the configuration for the report: the congestion control
// the kernel uses in this namespace (readable per netns) and Go's defaults.
func info(s *peer.Spec, extra string) string {
	cc := congestionFor(s)
	if cc == "" {
		cc = "unknown"
		if b, err := os.ReadFile("/proc/sys/net/ipv4/tcp_congestion_control"); err == nil {
			cc = strings.TrimSpace(string(b))
		}
	}
	out := "kernel tcp cc=" + cc + " nodelay=on"
	if extra != "" {
		out += " " + extra
	}
	return out
}
