package quicgo

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
	"github.com/quic-go/quic-go"
)

// Scale keeps quic-go's idle timeout (30 s) and keep-alive (off) at their
// defaults: a run's connections are idle only between the last echo and the
// client's close, so the memory measured is that of connections as shipped.
// checkAlive catches a run so long that the first connections timed out.

// echoLen is the size of each connection's check message: the connection's
// index (xor the seed), so an echo that crossed connections is caught.
const echoLen = 8

// serveScale accepts s.Conns connections, echoes one message on each and
// measures memory once all are established and idle. It then holds them
// until the client closes them (the client measures its own memory first).
// The echo goroutines end after their echo, so GoroutinesIdle counts what
// quic-go itself runs for idle connections.
func serveScale(ctx context.Context, s *peer.Spec, sv *server, ready func()) (peer.Result, error) {
	var r peer.Result
	r.RSSBefore, r.HeapBefore = peer.Memory()
	ready()

	var (
		conns  = make([]*quic.Conn, 0, s.Conns)
		first  *quic.Conn // the client's connection 0, see signalMeasured
		m      *peer.Meter
		t0     time.Time
		wg     sync.WaitGroup
		mu     sync.Mutex
		errs   []error
		echoed atomic.Int64
	)
	fail := func(err error) {
		mu.Lock()
		errs = append(errs, err)
		mu.Unlock()
	}
	// Accept stays in this loop and the echoes run beside it: quic-go's
	// accept queue holds 32 connections and refuses handshakes beyond that.
	for range s.Conns {
		c, err := sv.accept(ctx)
		if err != nil {
			fail(err)
			break
		}
		if m == nil {
			t0 = time.Now()
			if m, err = peer.StartMeter(s); err != nil {
				return r, err
			}
		}
		conns = append(conns, c)
		wg.Go(func() {
			i, err := echoOnce(ctx, c, s)
			if err != nil {
				fail(fmt.Errorf("connection from %v: %w", c.RemoteAddr(), err))
				return
			}
			if i == 0 {
				mu.Lock()
				first = c
				mu.Unlock()
			}
			echoed.Add(1)
		})
	}
	wg.Wait()
	if m != nil {
		r.HandshakeTime = time.Since(t0)
		ph, err := m.Stop()
		r.Phase = ph
		errs = append(errs, err)
	}
	r.Conns = int(echoed.Load())
	r.RSSAfter, r.HeapAfter = peer.Memory()
	r.GoroutinesIdle = runtime.NumGoroutine()
	r.Notes = peer.ScaleNotes(&r, sumLost(conns))
	errs = append(errs, checkAlive(conns))
	if first == nil && len(errs) == 0 {
		errs = append(errs, errors.New("no connection carried index 0"))
	}
	if err := errors.Join(errs...); err != nil {
		// Tell the client rather than leave it waiting for the signal.
		for _, c := range conns {
			c.CloseWithError(1, "server failed")
		}
		return r, err
	}
	if err := signalMeasured(first); err != nil {
		return r, err
	}
	// Hold the connections until the client has measured and closes them.
	// It closes them all at once, so after the first the rest get
	// closeLinger: a lost CONNECTION_CLOSE must not hold the run until the
	// idle timeout (the server closes what is left when it returns).
	var linger <-chan time.Time
	for _, c := range conns {
		select {
		case <-c.Context().Done():
		case <-linger:
			return r, nil
		case <-ctx.Done():
			return r, fmt.Errorf("waiting for the client to close: %w", context.Cause(ctx))
		}
		if linger == nil {
			t := time.NewTimer(closeLinger)
			defer t.Stop()
			linger = t.C
		}
	}
	return r, nil
}

// echoOnce is the server's check of one connection: read the client's
// message and its FIN, send it back, finish the stream. With both
// directions finished quic-go forgets the stream, so what stays is the
// idle connection alone. It returns the client's index of the connection.
func echoOnce(ctx context.Context, c *quic.Conn, s *peer.Spec) (uint64, error) {
	st, err := c.AcceptStream(ctx)
	if err != nil {
		return 0, fmt.Errorf("accept stream: %w", peer.CtxErr(ctx, err))
	}
	var msg [echoLen]byte
	if _, err := io.ReadFull(st, msg[:]); err != nil {
		return 0, fmt.Errorf("read: %w", peer.CtxErr(ctx, err))
	}
	if err := peer.ExpectEOF(st); err != nil {
		return 0, err
	}
	if _, err := st.Write(msg[:]); err != nil {
		return 0, fmt.Errorf("echo: %w", peer.CtxErr(ctx, err))
	}
	return binary.BigEndian.Uint64(msg[:]) ^ s.Seed, st.Close()
}

// The client must not close its connections before the server has
// measured: a CONNECTION_CLOSE frees the server's state for it, and the
// server's measurement would undercount (or checkAlive fail). The server's
// last echo does not tell the client the server is done, since the server
// measures after it, so once it has measured the server sends measuredByte
// on a unidirectional stream of the client's connection 0, and the client
// closes only after reading it.
const measuredByte = 'M'

func signalMeasured(c *quic.Conn) error {
	st, err := c.OpenUniStream()
	if err != nil {
		return fmt.Errorf("signal measured: %w", err)
	}
	if _, err := st.Write([]byte{measuredByte}); err != nil {
		return fmt.Errorf("signal measured: %w", err)
	}
	return st.Close()
}

// awaitMeasured waits for the server's signal on connection 0.
func awaitMeasured(ctx context.Context, c *quic.Conn) error {
	st, err := c.AcceptUniStream(ctx)
	if err != nil {
		return fmt.Errorf("wait for the server's measurement: %w", peer.CtxErr(ctx, err))
	}
	b, err := io.ReadAll(st)
	if err != nil {
		return fmt.Errorf("wait for the server's measurement: %w", peer.CtxErr(ctx, err))
	}
	if len(b) != 1 || b[0] != measuredByte {
		return fmt.Errorf("wait for the server's measurement: got %q", b)
	}
	return nil
}

// runScale dials s.Conns connections from one socket, s.Concurrency at a
// time, checks each with one echo, and measures memory with all of them
// established and idle, then closes them, which tells the server.
func runScale(ctx context.Context, s *peer.Spec, cl *client) (peer.Result, error) {
	var r peer.Result
	r.RSSBefore, r.HeapBefore = peer.Memory()

	conns := make([]*quic.Conn, s.Conns) // slot i written by one dialer only
	defer closeAll(conns)
	m, err := peer.StartMeter(s)
	if err != nil {
		return r, err
	}
	var dialErr error
	r.HandshakeTime, dialErr = peer.DialAll(ctx, s, func(ctx context.Context, i int) error {
		c, err := dialAndEcho(ctx, cl, s, i)
		conns[i] = c
		return err
	})
	ph, merr := m.Stop()
	r.Phase = ph
	var established []*quic.Conn
	for _, c := range conns {
		if c != nil {
			established = append(established, c)
		}
	}
	r.Conns = len(established)
	r.RSSAfter, r.HeapAfter = peer.Memory()
	r.GoroutinesIdle = runtime.NumGoroutine()
	r.Notes = peer.ScaleNotes(&r, sumLost(established))
	r.Info = fmt.Sprintf("concurrency=%d", s.Concurrency)
	if dialErr != nil {
		dialErr = peer.CtxErr(ctx, dialErr)
	}
	if err := errors.Join(dialErr, merr, checkAlive(established)); err != nil {
		return r, err
	}
	return r, awaitMeasured(ctx, conns[0])
}

// dialAndEcho establishes connection i and checks it end to end: a message
// carrying i goes out on a stream with FIN, and the same bytes and FIN must
// come back.
func dialAndEcho(ctx context.Context, cl *client, s *peer.Spec, i int) (*quic.Conn, error) {
	c, err := cl.dial(ctx)
	if err != nil {
		return nil, err
	}
	err = func() error {
		st, err := c.OpenStreamSync(ctx)
		if err != nil {
			return fmt.Errorf("open stream: %w", peer.CtxErr(ctx, err))
		}
		// Unblocks the echo if another dialer failed; only for the echo, so
		// held connections carry no registration.
		stop := context.AfterFunc(ctx, func() { st.SetDeadline(time.Unix(1, 0)) })
		defer stop()
		var msg, echo [echoLen]byte
		binary.BigEndian.PutUint64(msg[:], uint64(i)^s.Seed)
		if _, err := st.Write(msg[:]); err != nil {
			return fmt.Errorf("write: %w", peer.CtxErr(ctx, err))
		}
		if err := st.Close(); err != nil {
			return fmt.Errorf("close stream: %w", err)
		}
		if _, err := io.ReadFull(st, echo[:]); err != nil {
			return fmt.Errorf("read echo: %w", peer.CtxErr(ctx, err))
		}
		if !bytes.Equal(echo[:], msg[:]) {
			return fmt.Errorf("echo %x, sent %x", echo, msg)
		}
		return peer.ExpectEOF(st)
	}()
	if err != nil {
		c.CloseWithError(1, "check failed")
		return nil, err
	}
	return c, nil
}

// closeAll closes the client's connections, CONNECTION_CLOSE each, which
// is how the server learns the run is over.
func closeAll(conns []*quic.Conn) {
	for _, c := range conns {
		if c != nil {
			c.CloseWithError(0, "done")
		}
	}
}

// checkAlive fails when connections closed before the idle measurement:
// the memory numbers would then undercount.
func checkAlive(conns []*quic.Conn) error {
	dead := 0
	var first error
	for _, c := range conns {
		if c.Context().Err() != nil {
			if dead == 0 {
				first = context.Cause(c.Context())
			}
			dead++
		}
	}
	if dead > 0 {
		return fmt.Errorf("%d of %d connections closed before the idle measurement (first: %v)", dead, len(conns), first)
	}
	return nil
}

// sumLost is the connections' loss recovery, summed.
func sumLost(conns []*quic.Conn) map[string]float64 {
	var lost, sent uint64
	for _, c := range conns {
		st := c.ConnectionStats()
		lost += st.PacketsLost
		sent += st.PacketsSent
	}
	return map[string]float64{"retransmits": float64(lost), "packets_sent": float64(sent)}
}
