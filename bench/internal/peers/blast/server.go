package blast

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"time"

	"github.com/flightline/flightline/bench/internal/peer"
	"github.com/flightline/flightline/transport/link"
)

const (
	// idleLimit ends a blast whose end marker never came: once data has
	// arrived, this long without any datagram means the client is gone.
	idleLimit = 300 * time.Millisecond
	// lingerLimit is how long the server keeps answering repeated end
	// markers (its report may have been lost) after the last datagram.
	lingerLimit = 100 * time.Millisecond
	// watchTick is the resolution of both limits.
	watchTick = 10 * time.Millisecond
)

// bulkServer is the receiving side of one blast.
//
// Its Phase runs from the first verified data datagram to the last one (the
// monotonic time each ReadBatch returned), which is the window the
// orchestrator divides the server's Bytes by. The Meter behind it starts
// earlier, right after the server acknowledged the client's hello, so that
// taking the CPU and /proc/stat snapshots (and starting a CPU profile) does
// not happen while datagrams pour in; StartNS is then moved to the first
// arrival. CPU figures therefore cover the handshake reply to the end marker,
// a few hundred microseconds more than the phase's wall time.
type bulkServer struct {
	l  link.Link
	s  *peer.Spec
	rx *receiver
	wd *watchdog

	meter       *peer.Meter
	phase       peer.Phase
	meterErr    error
	first, last int64 // monotonic ns of the first and last verified data batch
	ended       bool  // the end marker arrived
	sent        int64 // datagrams the client says it sent
	reply       [1]link.Message
}

func serveBulk(ctx context.Context, s *peer.Spec, open opener, sealed bool, ready func()) (peer.Result, error) {
	var sl *sealer
	if sealed {
		var err error
		if sl, err = newSealer(s.Seed); err != nil {
			return peer.Result{}, err
		}
	}
	l, err := open(s, peer.ServerSide)
	if err != nil {
		return peer.Result{}, err
	}
	defer l.Close()
	stop := context.AfterFunc(ctx, func() { l.Close() })
	defer stop()
	wd := startWatchdog(watchTick, func() { l.Close() })
	defer wd.shutdown()

	srv := &bulkServer{l: l, s: s, rx: newReceiver(s, sl), wd: wd}
	ready()
	err = srv.receive()
	wd.shutdown() // receiving is over: expired() can no longer change
	switch {
	case ctx.Err() != nil:
		err = fmt.Errorf("blast server: %w", ctx.Err())
	case wd.expired() && srv.ended:
		err = nil
	case wd.expired():
		err = fmt.Errorf("blast server: no end marker: nothing arrived for %v after %d datagrams", idleLimit, srv.rx.datagrams)
	default:
		err = fmt.Errorf("blast server: %w", err)
	}
	return srv.result(err)
}

// receive reads until the link is closed: by the watchdog once the blast is
// over (or the client went quiet), or because ctx ended.
func (b *bulkServer) receive() error {
	msgs := make([]link.Message, link.IdealBatchSize)
	for i := range msgs {
		msgs[i].Buf = make([]byte, link.MaxPacketSize)
	}
	for {
		n, err := b.l.ReadBatch(msgs)
		if err != nil {
			return fmt.Errorf("receive: %w", err)
		}
		now := peer.Monotonic()
		b.wd.kick()
		data := false
		for _, m := range msgs[:n] {
			switch k, v := b.rx.handle(m.Buf); k {
			case kindData:
				data = true
			case kindHello:
				if err := b.hello(m.Addr); err != nil {
					return err
				}
			case kindEnd:
				if err := b.end(m.Addr, v); err != nil {
					return err
				}
			}
		}
		if data {
			if b.first == 0 {
				b.first = now
				if !b.ended {
					b.wd.arm(idleLimit)
				}
			}
			b.last = now
		}
	}
}

// hello acknowledges the client's hello and, the first time, starts the
// meter: the client starts sending only after it has the acknowledgement.
func (b *bulkServer) hello(from netip.AddrPort) error {
	if err := b.send(from, control(kindHelloAck, b.s.Seed, 0)); err != nil {
		return fmt.Errorf("acknowledge hello: %w", err)
	}
	if b.meter == nil && !b.ended {
		m, err := peer.StartMeter(b.s)
		if err != nil {
			return err
		}
		b.meter = m
	}
	return nil
}

// end handles an end marker: the first one stops the meter and arms the
// linger limit; every one is answered with a report, since the client
// repeats its marker until a report arrives.
func (b *bulkServer) end(from netip.AddrPort, sent uint64) error {
	if !b.ended {
		b.ended, b.sent = true, int64(sent)
		b.stopMeter()
		b.wd.arm(lingerLimit)
	}
	r := make([]byte, reportLen)
	putHeader(r, kindReport, b.s.Seed, uint64(b.rx.datagrams))
	putUint64(r[headerLen:], uint64(b.rx.bytes))
	if err := b.send(from, r); err != nil {
		return fmt.Errorf("send report: %w", err)
	}
	return nil
}

func (b *bulkServer) send(to netip.AddrPort, msg []byte) error {
	b.reply[0] = link.Message{Buf: msg, Addr: to}
	_, err := b.l.WriteBatch(b.reply[:])
	return err
}

func (b *bulkServer) stopMeter() {
	if b.meter != nil {
		b.phase, b.meterErr = b.meter.Stop()
		b.meter = nil
	}
}

// result builds the server's Result; runErr is how receiving ended.
func (b *bulkServer) result(runErr error) (peer.Result, error) {
	b.stopMeter()
	ph := b.phase
	if b.first != 0 {
		ph.StartNS, ph.EndNS = b.first, b.last
	}
	rx := b.rx
	r := peer.Result{
		Side:      peer.ServerSide,
		Phase:     ph,
		Bytes:     rx.bytes,
		Datagrams: rx.datagrams,
		Info:      capsInfo(b.l),
		Notes: map[string]float64{
			"expected":   float64(rx.plan.count),
			"duplicates": float64(rx.dups),
			"corrupt":    float64(rx.corrupt),
		},
	}
	errs := []error{runErr, b.meterErr, rx.err()}
	if b.ended {
		r.Notes["sent"] = float64(b.sent)
		if b.sent > 0 {
			r.Notes["lost_pct"] = 100 * float64(b.sent-rx.datagrams) / float64(b.sent)
		}
		if rx.datagrams > b.sent {
			errs = append(errs, fmt.Errorf("received %d distinct datagrams but the client sent %d", rx.datagrams, b.sent))
		}
	}
	if runErr == nil && rx.datagrams == 0 {
		errs = append(errs, fmt.Errorf("none of the %d datagrams the client sent arrived", b.sent))
	}
	return r, errors.Join(errs...)
}
