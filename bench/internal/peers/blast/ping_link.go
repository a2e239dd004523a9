package blast

import (
	"bytes"
	"context"
	"fmt"

	"github.com/flightline/flightline/bench/internal/peer"
	"github.com/flightline/flightline/transport/link"
)

// linkPing is the latency floor of a link.Link datapath (AF_XDP for
// xdp-blast): one datagram each way through WriteBatch and ReadBatch, with
// no protocol in between. Links have no read deadline, so a watchdog closes
// the link when a round trip stalls for pingTimeout.
type linkPing struct{}

var pingLink pinger = linkPing{}

// pingTick is how often the ping watchdog looks: pingTimeout is honoured to
// within it.
const pingTick = pingTimeout / 10

func (linkPing) serve(ctx context.Context, s *peer.Spec, open opener, ready func()) (peer.Result, error) {
	l, err := open(s, peer.ServerSide)
	if err != nil {
		return peer.Result{}, err
	}
	defer l.Close()
	stop := context.AfterFunc(ctx, func() { l.Close() })
	defer stop()
	wd := startWatchdog(pingTick, func() { l.Close() })
	defer wd.shutdown()
	ready()

	r := peer.Result{Side: peer.ServerSide, Info: capsInfo(l)}
	msgs := make([]link.Message, link.IdealBatchSize)
	for i := range msgs {
		msgs[i].Buf = make([]byte, link.MaxPacketSize)
	}
	total := s.Warmup + s.Messages
	var m *peer.Meter
	for served := 0; served < total; {
		n, err := l.ReadBatch(msgs)
		if err != nil {
			return r, fmt.Errorf("link ping: after %d echoes: read: %w", served, linkErr(ctx, wd, err))
		}
		// Arm only now: the first message waits for the client process to
		// start, which only ctx bounds.
		wd.arm(pingTimeout)
		if served+n > total {
			return r, fmt.Errorf("link ping: %d messages after %d echoes, the run has %d", n, served, total)
		}
		for _, msg := range msgs[:n] {
			if len(msg.Buf) != s.MessageSize {
				return r, fmt.Errorf("link ping: %d-byte message from %v, want %d bytes", len(msg.Buf), msg.Addr, s.MessageSize)
			}
		}
		if m == nil && served+n > s.Warmup {
			if m, err = peer.StartMeter(s); err != nil {
				return r, err
			}
		}
		// ReadBatch left each sender in Addr: echo the batch as it is.
		if _, err := l.WriteBatch(msgs[:n]); err != nil {
			return r, fmt.Errorf("link ping: after %d echoes: echo: %w", served, linkErr(ctx, wd, err))
		}
		served += n
	}
	if m != nil {
		ph, err := m.Stop()
		r.Phase = ph
		return r, err
	}
	return r, nil
}

func (linkPing) run(ctx context.Context, s *peer.Spec, open opener) (peer.Result, error) {
	l, err := open(s, peer.ClientSide)
	if err != nil {
		return peer.Result{}, err
	}
	defer l.Close()
	stop := context.AfterFunc(ctx, func() { l.Close() })
	defer stop()
	wd := startWatchdog(pingTick, func() { l.Close() })
	defer wd.shutdown()
	wd.arm(pingTimeout)

	r := peer.Result{Side: peer.ClientSide, Info: capsInfo(l)}
	msg := peer.NewPattern(s.Seed).Window(0, 0, s.MessageSize)
	out := []link.Message{{Buf: msg, Addr: s.Server}}
	in := make([]link.Message, 4)
	for i := range in {
		in[i].Buf = make([]byte, link.MaxPacketSize)
	}
	rtts := make([]int64, 0, s.Messages)
	var m *peer.Meter
	for i := range s.Warmup + s.Messages {
		if i == s.Warmup {
			if m, err = peer.StartMeter(s); err != nil {
				return r, err
			}
		}
		if err := ctx.Err(); err != nil {
			return r, fmt.Errorf("link ping: after %d round trips: %w", i, err)
		}
		t0 := peer.Monotonic()
		if _, err := l.WriteBatch(out); err != nil {
			return r, fmt.Errorf("link ping: round trip %d: write: %w", i, linkErr(ctx, wd, err))
		}
		n, err := l.ReadBatch(in)
		rtt := peer.Monotonic() - t0
		if err != nil {
			return r, fmt.Errorf("link ping: round trip %d: read: %w", i, linkErr(ctx, wd, err))
		}
		wd.kick()
		if n != 1 || in[0].Addr != s.Server || !bytes.Equal(in[0].Buf, msg) {
			return r, fmt.Errorf("link ping: round trip %d: %d datagrams back, first %d bytes from %v: not the echo of %d bytes from %v",
				i, n, len(in[0].Buf), in[0].Addr, len(msg), s.Server)
		}
		if i >= s.Warmup {
			rtts = append(rtts, rtt)
		}
	}
	ph, err := m.Stop()
	r.Phase, r.RTTs, r.Bytes = ph, rtts, int64(len(rtts)*s.MessageSize)
	return r, err
}

// linkErr explains why a link call failed: ctx ended, the watchdog closed
// the link, or the link's own error.
func linkErr(ctx context.Context, wd *watchdog, err error) error {
	if cerr := ctx.Err(); cerr != nil {
		return cerr
	}
	if wd.expired() {
		return fmt.Errorf("nothing arrived for %v, a datagram was lost", pingTimeout)
	}
	return err
}
