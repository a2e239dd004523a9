package blast

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"syscall"
	"time"

	"github.com/flightline/flightline/bench/internal/peer"
	"github.com/flightline/flightline/transport/link"
)

const (
	// retryInterval spaces repeated hellos and end markers. Repeating is
	// protocol, not synchronisation: either datagram, or its answer, can be
	// lost (the end marker in particular can be dropped by the very overrun
	// the blast measures).
	retryInterval = 20 * time.Millisecond
	// helloTries bounds the handshake (5 s). The server listens before the
	// client starts, so only loss delays it.
	helloTries = 250
	// endTries bounds the wait for the report (2 s): time for the receiver
	// to drain its queue before it can see the marker.
	endTries = 100
	// writeStall is how long the link may refuse every datagram, with a
	// transient error, before the blast gives up.
	writeStall = time.Second
	// writeBackoff is the pause before retrying after a transient error.
	writeBackoff = 50 * time.Microsecond
)

// runBulk is the sending side of a blast. Its Phase is the send loop: from
// the first WriteBatch to the return of the last one, after a hello exchange
// that proves the server is counting (and that both hosts can reach each
// other, so neither path pays for neighbour resolution in the phase).
func runBulk(ctx context.Context, s *peer.Spec, open opener, sealed bool) (peer.Result, error) {
	var sl *sealer
	if sealed {
		var err error
		if sl, err = newSealer(s.Seed); err != nil {
			return peer.Result{}, err
		}
	}
	l, err := open(s, peer.ClientSide)
	if err != nil {
		return peer.Result{}, err
	}
	stop := context.AfterFunc(ctx, func() { l.Close() })
	defer stop()
	rd := startReplies(l, s.Seed)
	defer func() {
		l.Close()
		<-rd.done
	}()
	r := peer.Result{Side: peer.ClientSide, Info: capsInfo(l), Notes: map[string]float64{}}

	if _, err := exchange(ctx, l, rd, control(kindHello, s.Seed, 0), s.Server, rd.acks, helloTries); err != nil {
		return r, fmt.Errorf("blast client: handshake with %v: %w", s.Server, err)
	}
	m, err := peer.StartMeter(s)
	if err != nil {
		return r, err
	}
	sent, retries, sendErr := sendBlast(ctx, l, s, sl)
	ph, merr := m.Stop()
	p := newPlan(s.Bytes, sl.overhead())
	r.Phase, r.Datagrams, r.Bytes = ph, sent, min(sent*p.chunk, p.bytes)
	r.Notes["write_retries"] = float64(retries)
	if err := errors.Join(sendErr, merr); err != nil {
		return r, fmt.Errorf("blast client: %w", err)
	}
	rep, err := exchange(ctx, l, rd, control(kindEnd, s.Seed, uint64(sent)), s.Server, rd.reports, endTries)
	if err != nil {
		return r, fmt.Errorf("blast client: no report from the server after the blast: %w", err)
	}
	r.Notes["server_received"] = float64(rep.datagrams)
	r.Notes["server_bytes"] = float64(rep.bytes)
	return r, nil
}

// sendBlast sends the run's datagrams in batches of link.IdealBatchSize,
// each a header and a window of the pattern copied behind it (and sealed in
// place, with a non-nil sl). It returns the datagrams the link took and the
// transient write errors it retried.
func sendBlast(ctx context.Context, l link.Link, s *peer.Spec, sl *sealer) (sent, retries int64, err error) {
	p, pat := newPlan(s.Bytes, sl.overhead()), peer.NewPattern(s.Seed)
	msgs := make([]link.Message, link.IdealBatchSize)
	for i := range msgs {
		msgs[i] = link.Message{Buf: make([]byte, datagramLen), Addr: s.Server}
	}
	for sent < p.count {
		if err := ctx.Err(); err != nil {
			return sent, retries, fmt.Errorf("after %d of %d datagrams: %w", sent, p.count, err)
		}
		k := int(min(int64(len(msgs)), p.count-sent))
		for i := range msgs[:k] {
			seq := sent + int64(i)
			n := p.payload(seq)
			b := msgs[i].Buf[:headerLen+n]
			putHeader(b, kindData, s.Seed, uint64(seq))
			copy(b[headerLen:], pat.Window(0, p.offset(seq), n))
			msgs[i].Buf = sl.seal(b, uint64(seq), n)
		}
		n, r, err := writeAll(ctx, l, msgs[:k])
		sent, retries = sent+int64(n), retries+r
		if err != nil {
			return sent, retries, fmt.Errorf("send datagram %d of %d: %w", sent, p.count, err)
		}
	}
	return sent, retries, nil
}

// writeAll hands msgs to the link, retrying what it refused for a transient
// reason (a full queue somewhere below the link). udplink already waits on
// the netpoller for socket-buffer room and the xdp link for free TX frames,
// so retries are rare; a link that takes nothing for writeStall fails.
func writeAll(ctx context.Context, l link.Link, msgs []link.Message) (n int, retries int64, err error) {
	var stalled time.Time
	for {
		k, err := l.WriteBatch(msgs[n:])
		n += k
		if n == len(msgs) {
			return n, retries, nil
		}
		if err != nil && !transient(err) {
			return n, retries, err
		}
		if err == nil {
			err = errors.New("link accepted part of a batch without an error")
		}
		now := time.Now()
		switch {
		case k > 0 || stalled.IsZero():
			stalled = now
		case now.Sub(stalled) > writeStall:
			return n, retries, fmt.Errorf("link took nothing for %v: %w", writeStall, err)
		}
		if cerr := ctx.Err(); cerr != nil {
			return n, retries, cerr
		}
		retries++
		time.Sleep(writeBackoff)
	}
}

// transient reports whether a write error means "not now" rather than "never".
func transient(err error) bool {
	return errors.Is(err, syscall.EAGAIN) || errors.Is(err, syscall.ENOBUFS) ||
		errors.Is(err, syscall.ENOMEM) || errors.Is(err, syscall.EINTR)
}

// report is what the server says it received.
type report struct{ datagrams, bytes uint64 }

// replies reads the client's link for the server's answers. The server only
// ever sends hello acknowledgements and reports; anything else is ignored.
type replies struct {
	acks    chan struct{}
	reports chan report
	done    chan struct{}
	err     error // why reading stopped, if not because the link was closed; set before done closes
}

func startReplies(l link.Link, seed uint64) *replies {
	r := &replies{acks: make(chan struct{}, 1), reports: make(chan report, 1), done: make(chan struct{})}
	go func() {
		defer close(r.done)
		msgs := make([]link.Message, 8)
		for i := range msgs {
			msgs[i].Buf = make([]byte, link.MaxPacketSize)
		}
		for {
			n, err := l.ReadBatch(msgs)
			if err != nil {
				if !errors.Is(err, net.ErrClosed) {
					r.err = err
				}
				return
			}
			for _, m := range msgs[:n] {
				if d, b, ok := parseReport(m.Buf, seed); ok {
					offer(r.reports, report{datagrams: d, bytes: b})
				} else if k, _ := parseHeader(m.Buf, seed); k == kindHelloAck && len(m.Buf) == headerLen {
					offer(r.acks, struct{}{})
				}
			}
		}
	}()
	return r
}

// offer delivers v unless an earlier answer is still waiting: answers to
// repeated requests are interchangeable.
func offer[T any](c chan T, v T) {
	select {
	case c <- v:
	default:
	}
}

// exchange sends msg to dst every retryInterval, up to tries times, until an
// answer arrives on answers.
func exchange[T any](ctx context.Context, l link.Link, rd *replies, msg []byte, dst netip.AddrPort, answers <-chan T, tries int) (T, error) {
	var zero T
	out := []link.Message{{Buf: msg, Addr: dst}}
	t := time.NewTimer(retryInterval)
	defer t.Stop()
	for range tries {
		if _, err := l.WriteBatch(out); err != nil && !transient(err) {
			return zero, fmt.Errorf("send: %w", err)
		}
		t.Reset(retryInterval)
		select {
		case v := <-answers:
			return v, nil
		case <-t.C:
		case <-rd.done:
			if err := ctx.Err(); err != nil {
				return zero, err
			}
			return zero, fmt.Errorf("receive: %w", orErr(rd.err, net.ErrClosed))
		case <-ctx.Done():
			return zero, ctx.Err()
		}
	}
	return zero, fmt.Errorf("no answer to %d tries over %v", tries, time.Duration(tries)*retryInterval)
}

// orErr is err, or fallback when err is nil.
func orErr(err, fallback error) error {
	if err != nil {
		return err
	}
	return fallback
}
