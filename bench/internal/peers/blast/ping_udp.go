package blast

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"time"

	"github.com/flightline/flightline/bench/internal/peer"
)

// pingTimeout bounds each read of a ping round trip. Nothing is lost on an
// idle veth, so a missing datagram is a failure to report, not something to
// wait out until the run's deadline.
const pingTimeout = time.Second

// kernelUDPPing is the raw UDP latency floor: one plain net.UDPConn per
// side, blocking reads through the Go netpoller, which is what any Go
// transport's receive path pays before its own work starts.
type kernelUDPPing struct{}

var pingKernelUDP pinger = kernelUDPPing{}

// serve echoes Warmup+Messages datagrams. It does not need the link opener:
// the floor is the kernel socket itself.
func (kernelUDPPing) serve(ctx context.Context, s *peer.Spec, _ opener, ready func()) (peer.Result, error) {
	c, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(s.Server))
	if err != nil {
		return peer.Result{}, fmt.Errorf("udp ping: listen %v: %w", s.Server, err)
	}
	defer c.Close()
	stop := context.AfterFunc(ctx, func() { c.Close() })
	defer stop()
	ready()

	r := peer.Result{Side: peer.ServerSide, Info: "datapath=kernel-udp"}
	buf := make([]byte, s.MessageSize+1) // one spare byte exposes an oversized message
	dl := lazyDeadline{set: c.SetReadDeadline, timeout: pingTimeout}
	var m *peer.Meter
	for i := range s.Warmup + s.Messages {
		if i == s.Warmup {
			if m, err = peer.StartMeter(s); err != nil {
				return r, err
			}
		}
		// The first message waits for the client process to start, which
		// only ctx bounds; later ones follow a round trip.
		if i > 0 {
			if err := dl.arm(); err != nil {
				return r, fmt.Errorf("udp ping: set deadline: %w", err)
			}
		}
		n, from, err := c.ReadFromUDPAddrPort(buf)
		if err != nil {
			return r, fmt.Errorf("udp ping: round trip %d: read: %w", i, ctxOr(ctx, dl.explain(err)))
		}
		if n != s.MessageSize {
			return r, fmt.Errorf("udp ping: round trip %d: %d-byte message from %v, want %d bytes", i, n, from, s.MessageSize)
		}
		if _, err := c.WriteToUDPAddrPort(buf[:n], from); err != nil {
			return r, fmt.Errorf("udp ping: round trip %d: echo to %v: %w", i, from, ctxOr(ctx, err))
		}
	}
	if m != nil {
		ph, err := m.Stop()
		r.Phase = ph
		return r, err
	}
	return r, nil
}

// run drives peer.PingClient over a connected UDP socket from s.Client to
// s.Server, whose Read and Write carry one datagram each.
func (kernelUDPPing) run(ctx context.Context, s *peer.Spec, _ opener) (peer.Result, error) {
	c, err := net.DialUDP("udp", &net.UDPAddr{IP: s.Client.AsSlice()}, net.UDPAddrFromAddrPort(s.Server))
	if err != nil {
		return peer.Result{}, fmt.Errorf("udp ping: dial %v from %v: %w", s.Server, s.Client, err)
	}
	defer c.Close()
	stop := context.AfterFunc(ctx, func() { c.Close() })
	defer stop()
	r, err := peer.PingClient(ctx, s, &timedConn{UDPConn: c, dl: lazyDeadline{set: c.SetReadDeadline, timeout: pingTimeout}})
	r.Side, r.Info = peer.ClientSide, "datapath=kernel-udp"
	if err != nil {
		return r, fmt.Errorf("udp ping: %w", ctxOr(ctx, err))
	}
	return r, nil
}

// timedConn bounds every Read of a connected UDP socket by a lazyDeadline.
type timedConn struct {
	*net.UDPConn
	dl lazyDeadline
}

func (c *timedConn) Read(b []byte) (int, error) {
	if err := c.dl.arm(); err != nil {
		return 0, fmt.Errorf("set deadline: %w", err)
	}
	n, err := c.UDPConn.Read(b)
	return n, c.dl.explain(err)
}

// lazyDeadline bounds blocking reads without updating the socket's deadline
// timer on every read of a latency measurement: it moves the deadline only
// when less than half of timeout is left, so each read may block between
// timeout/2 and timeout.
type lazyDeadline struct {
	set     func(time.Time) error
	timeout time.Duration
	until   time.Time
}

func (d *lazyDeadline) arm() error {
	now := time.Now()
	if d.until.Sub(now) >= d.timeout/2 {
		return nil
	}
	d.until = now.Add(d.timeout)
	return d.set(d.until)
}

// explain turns a deadline error into one that says what it means.
func (d *lazyDeadline) explain(err error) error {
	if errors.Is(err, os.ErrDeadlineExceeded) {
		return fmt.Errorf("nothing arrived for %v, a datagram was lost: %w", d.timeout/2, err)
	}
	return err
}

// ctxOr prefers ctx's error: when ctx ended, a socket error is only the
// closing that context.AfterFunc did.
func ctxOr(ctx context.Context, err error) error {
	if cerr := ctx.Err(); cerr != nil {
		return cerr
	}
	return err
}
