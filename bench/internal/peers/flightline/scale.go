package flightline

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/flightline/flightline/bench/internal/peer"
	"github.com/flightline/flightline/transport"
)

// Scale keeps the transport's idle timeout and keepalive at their defaults
// (30 s and 10 s): a run's connections are idle only between the last echo
// and the client's close, well under either, so neither fires during a run
// and the memory measured is that of connections as shipped.

// scaleHandshakeRate is the server's HandshakeRate for a Scale run. The
// limiter is a token bucket holding one second's worth of initiations, so a
// rate of at least s.Conns admits every initiation of the run without a
// cookie round trip (twice that leaves room for retransmitted initiations):
// the run measures handshakes, not the DoS defence.
func scaleHandshakeRate(s *peer.Spec) int {
	return max(transport.DefaultHandshakeRate, 2*s.Conns)
}

// echoLen is the size of each connection's check message.
const echoLen = 8

// measuredMsg is the message the server sends on the client's first
// connection once it has measured: the client must hold every connection
// open until then, and closes its endpoint after it.
const measuredMsg = "measured"

// serveScale accepts connections and echoes one message on each until
// s.Conns have been checked, and measures memory once all are established
// and idle. It then tells the client (measuredMsg) and holds the
// connections until the client closes.
func (p *flPeer) serveScale(ctx context.Context, s *peer.Spec, k sideKeys, ready func()) (peer.Result, error) {
	rate := scaleHandshakeRate(s)
	ep, err := p.listen(ctx, s, k, func(c *transport.Config) {
		c.HandshakeRate = rate
		// Every connection of the run comes from one client address.
		c.MaxConnections = max(transport.DefaultMaxConnections, s.Conns)
		c.MaxConnectionsPerSource = max(transport.DefaultMaxConnectionsPerSource, s.Conns)
	})
	if err != nil {
		return peer.Result{}, err
	}
	defer ep.Close()
	var r peer.Result
	r.RSSBefore, r.HeapBefore = peer.Memory()
	ready()

	var (
		mu       sync.Mutex
		m        *peer.Meter
		t0, t1   time.Time
		checked  []*transport.Conn // echoed, in order
		first    *transport.Conn   // carries the client's connection 0
		errs     []error
		done     = make(chan struct{}) // s.Conns checked, or a failure
		doneOnce sync.Once
		wg       sync.WaitGroup
	)
	finish := func() { doneOnce.Do(func() { close(done) }) }
	// echoCtx ends the accept loop and the echoes of connections the client
	// gave up on (a redial whose first handshake did complete after all).
	echoCtx, stopEchoes := context.WithCancel(ctx)
	defer stopEchoes()
	// Accept stays in its own loop and the echoes run beside it: the
	// endpoint's accept queue is short, and a handshake that finds it full
	// is dropped.
	wg.Go(func() {
		for {
			c, err := p.accept(echoCtx, ep)
			if err != nil {
				if echoCtx.Err() == nil {
					mu.Lock()
					errs = append(errs, err)
					mu.Unlock()
					finish()
				}
				return
			}
			mu.Lock()
			if m == nil {
				t0 = time.Now()
				if m, err = peer.StartMeter(s); err != nil {
					errs = append(errs, err)
					finish()
				}
			}
			mu.Unlock()
			wg.Go(func() {
				i, err := echoOnce(echoCtx, s, c)
				if echoCtx.Err() != nil {
					return
				}
				mu.Lock()
				defer mu.Unlock()
				if err != nil {
					errs = append(errs, fmt.Errorf("connection from %v: %w", c.RemoteAddr(), err))
					finish()
					return
				}
				if i == 0 {
					first = c
				}
				checked = append(checked, c)
				if len(checked) == s.Conns {
					t1 = time.Now()
					finish()
				}
			})
		}
	})
	select {
	case <-done:
	case <-ctx.Done():
	}
	stopEchoes()
	wg.Wait()
	if err := ctx.Err(); err != nil {
		errs = append(errs, err)
	}
	if m != nil {
		ph, err := m.Stop()
		r.Phase = ph
		errs = append(errs, err)
	}
	if !t1.IsZero() {
		r.HandshakeTime = t1.Sub(t0)
	}
	r.Conns = len(checked)
	r.RSSAfter, r.HeapAfter = peer.Memory()
	r.GoroutinesIdle = runtime.NumGoroutine()
	errs = append(errs, checkAlive(checked))
	es := ep.Stats()
	r.Notes = peer.ScaleNotes(&r, map[string]float64{
		"cookies_sent":      float64(es.CookiesSent),
		"handshakes":        float64(es.Handshakes),
		"dropped_handshake": float64(es.DroppedHandshake),
	})
	r.Info = fmt.Sprintf("handshake_rate=%d/s (cookies only above it) idle_timeout=%v keepalive=%v (defaults)",
		rate, transport.DefaultIdleTimeout, transport.DefaultIdleTimeout/3)
	if len(checked) > 0 {
		r.Info = p.connInfo(checked[0].Stats()) + " " + r.Info
	}
	if err := errors.Join(errs...); err != nil {
		return r, err
	}
	if first == nil {
		return r, errors.New("no connection carried the client's index 0")
	}
	if err := first.SendMessage([]byte(measuredMsg)); err != nil {
		return r, fmt.Errorf("tell the client we measured: %w", err)
	}
	// Hold the connections until the client closes its endpoint; any one
	// close is the signal (they all close together).
	gone := make(chan struct{})
	var once sync.Once
	for _, c := range checked {
		context.AfterFunc(c.Context(), func() { once.Do(func() { close(gone) }) })
	}
	select {
	case <-gone:
		return r, nil
	case <-ctx.Done():
		return r, fmt.Errorf("waiting for the client to close: %w", ctx.Err())
	}
}

// echoOnce is the server's check of one connection: read the client's
// message and its FIN, send it back, finish the stream. With both
// directions finished the stream is forgotten, so what stays is the idle
// connection alone. It returns the client's index for the connection.
func echoOnce(ctx context.Context, s *peer.Spec, c *transport.Conn) (uint64, error) {
	st, err := c.AcceptStream(ctx)
	if err != nil {
		return 0, fmt.Errorf("accept stream: %w", peer.CtxErr(ctx, err))
	}
	cs := ctxStream{ctx, st}
	var msg [echoLen]byte
	if _, err := io.ReadFull(cs, msg[:]); err != nil {
		return 0, fmt.Errorf("read: %w", err)
	}
	if err := peer.ExpectEOF(cs); err != nil {
		return 0, err
	}
	if _, err := cs.Write(msg[:]); err != nil {
		return 0, fmt.Errorf("echo: %w", err)
	}
	return binary.BigEndian.Uint64(msg[:]) ^ s.Seed, st.Close()
}

// runScale dials s.Conns connections from one endpoint, s.Concurrency at a
// time, checks each with one echo, and measures memory with all of them
// established and idle. Closing the endpoint at the end tells the server.
func (p *flPeer) runScale(ctx context.Context, s *peer.Spec, k sideKeys) (peer.Result, error) {
	ep, err := p.bind(ctx, s, k)
	if err != nil {
		return peer.Result{}, err
	}
	defer ep.Close()
	var r peer.Result
	r.RSSBefore, r.HeapBefore = peer.Memory()

	conns := make([]*transport.Conn, s.Conns) // slot i written by one dialer only
	m, err := peer.StartMeter(s)
	if err != nil {
		return r, err
	}
	var redials atomic.Int64
	var dialErr error
	r.HandshakeTime, dialErr = peer.DialAll(ctx, s, func(ctx context.Context, i int) error {
		c, err := p.dialAndEcho(ctx, ep, s, k, i, &redials)
		conns[i] = c
		return err
	})
	ph, merr := m.Stop()
	r.Phase = ph
	var established []*transport.Conn
	for _, c := range conns {
		if c != nil {
			established = append(established, c)
		}
	}
	r.Conns = len(established)
	r.RSSAfter, r.HeapAfter = peer.Memory()
	r.GoroutinesIdle = runtime.NumGoroutine()
	var retrans uint64
	for _, c := range established {
		retrans += c.Stats().PacketsRetransmitted
	}
	r.Notes = peer.ScaleNotes(&r, map[string]float64{
		"retransmits":       float64(retrans),
		"dropped_handshake": float64(ep.Stats().DroppedHandshake),
		"redials":           float64(redials.Load()),
	})
	r.Info = fmt.Sprintf("concurrency=%d redial_after=%v", s.Concurrency, dialAttempt)
	if len(established) > 0 {
		r.Info = p.connInfo(established[0].Stats()) + " " + r.Info
	}
	if dialErr != nil {
		return r, errors.Join(peer.CtxErr(ctx, dialErr), merr)
	}
	if err := errors.Join(merr, checkAlive(established)); err != nil {
		return r, err
	}
	// Hold every connection until the server has measured too; the
	// deferred endpoint close then tells it we are done.
	msg, err := conns[0].ReceiveMessage(ctx)
	if err != nil {
		return r, fmt.Errorf("wait for the server to measure: %w", peer.CtxErr(ctx, err))
	}
	if string(msg) != measuredMsg {
		return r, fmt.Errorf("server sent %q, want %q", msg, measuredMsg)
	}
	return r, nil
}

// dialAndEcho establishes connection i and checks it end to end: a
// message carrying i (so a crossed echo is caught) goes out on a stream
// with FIN, and the same bytes and FIN must come back.
func (p *flPeer) dialAndEcho(ctx context.Context, ep *transport.Endpoint, s *peer.Spec, k sideKeys, i int, redials *atomic.Int64) (*transport.Conn, error) {
	c, err := p.redial(ctx, ep, s, k, redials)
	if err != nil {
		return nil, err
	}
	err = func() error {
		st, err := c.OpenStreamSync(ctx)
		if err != nil {
			return fmt.Errorf("open stream: %w", peer.CtxErr(ctx, err))
		}
		cs := ctxStream{ctx, st}
		var msg, echo [echoLen]byte
		binary.BigEndian.PutUint64(msg[:], uint64(i)^s.Seed)
		if _, err := cs.Write(msg[:]); err != nil {
			return fmt.Errorf("write: %w", err)
		}
		if err := st.Close(); err != nil {
			return fmt.Errorf("close stream: %w", err)
		}
		if _, err := io.ReadFull(cs, echo[:]); err != nil {
			return fmt.Errorf("read echo: %w", err)
		}
		if !bytes.Equal(echo[:], msg[:]) {
			return fmt.Errorf("echo %x, sent %x", echo, msg)
		}
		return peer.ExpectEOF(cs)
	}()
	if err != nil {
		c.CloseWithError(0, "check failed")
		return nil, err
	}
	return c, nil
}

// dialAttempt bounds one handshake attempt of a Scale run, after which the
// connection is dialled afresh (counted in Notes["redials"]).
//
// Why: the responder accepts an initiator key's initiations only in
// increasing timestamp order (replay protection), and Endpoint.Dial
// retransmits its first initiation unchanged. When concurrent dials from one
// endpoint reach the server out of the order they were created in, the
// older one is rejected as a replay, and so is every retransmission of it:
// that Dial can only end in ErrHandshakeTimeout after Config.HandshakeTimeout
// (10 s). Measured over loopback, 2000 dials from one key: 0 failures with
// one dial in flight, 1 with two, 4-6 with eight. A new Dial carries a new,
// newer timestamp. On the testnet a handshake takes well under a
// millisecond unloaded and a few with 64 in flight on two CPUs, so an
// attempt this long has failed rather than being slow.
const (
	dialAttempt  = 100 * time.Millisecond
	dialAttempts = 5
)

// redial dials like dial, but starts over with a fresh initiation when an
// attempt gets no answer within dialAttempt.
func (p *flPeer) redial(ctx context.Context, ep *transport.Endpoint, s *peer.Spec, k sideKeys, redials *atomic.Int64) (*transport.Conn, error) {
	for attempt := 1; ; attempt++ {
		actx, cancel := context.WithTimeout(ctx, dialAttempt)
		c, err := p.dial(actx, ep, s, k)
		timedOut := actx.Err() != nil && ctx.Err() == nil
		cancel()
		if err == nil || !timedOut || attempt == dialAttempts {
			if err != nil && timedOut {
				err = fmt.Errorf("%d attempts of %v: %w", attempt, dialAttempt, err)
			}
			return c, err
		}
		redials.Add(1)
	}
}

// checkAlive fails when connections closed before the idle measurement:
// the memory numbers would then undercount.
func checkAlive(conns []*transport.Conn) error {
	dead := 0
	for _, c := range conns {
		if c.Context().Err() != nil {
			dead++
		}
	}
	if dead > 0 {
		return fmt.Errorf("%d of %d connections closed before the idle measurement", dead, len(conns))
	}
	return nil
}
