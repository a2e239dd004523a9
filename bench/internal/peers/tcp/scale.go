package tcp

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/flightline/flightline/bench/internal/peer"
)

// echoLen is the size of each connection's check message: the connection's
// index (xor the seed), so an echo that crossed connections is caught.
const echoLen = 8

// fdSlack is the descriptors a side needs beyond one per connection
// (listener, stdio, profiles, the runtime's own).
const fdSlack = 64

// serveScale accepts s.Conns connections, echoes one message on each and
// measures memory once all are established and idle. It then holds them
// until the client closes them (the client measures its own memory first).
//
// The echo goroutines end after their echo, so GoroutinesIdle counts what
// the transport needs to hold idle connections (for kernel TCP: nothing
// per connection), not an application's reader per connection.
func serveScale(ctx context.Context, s *peer.Spec, ready func()) (peer.Result, error) {
	if err := raiseNofile(uint64(s.Conns) + fdSlack); err != nil {
		return peer.Result{}, err
	}
	ln, err := listen(ctx, s)
	if err != nil {
		return peer.Result{}, err
	}
	defer ln.Close()
	conns := newConnSet(ctx)
	defer conns.close()
	var r peer.Result
	r.RSSBefore, r.HeapBefore = peer.Memory()
	ready()

	var (
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
	for range s.Conns {
		c, err := accept(ctx, ln)
		if err != nil {
			fail(fmt.Errorf("accept: %w", err))
			break
		}
		if m == nil {
			t0 = time.Now()
			if m, err = peer.StartMeter(s); err != nil {
				c.Close()
				return r, err
			}
		}
		if !conns.add(c) {
			fail(ctx.Err())
			break
		}
		wg.Go(func() {
			var msg [echoLen]byte
			if _, err := io.ReadFull(c, msg[:]); err != nil {
				fail(fmt.Errorf("connection from %v: read: %w", c.RemoteAddr(), err))
				return
			}
			if _, err := c.Write(msg[:]); err != nil {
				fail(fmt.Errorf("connection from %v: echo: %w", c.RemoteAddr(), err))
				return
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
	r.Notes = peer.ScaleNotes(&r, map[string]float64{})
	if err := errors.Join(errs...); err != nil {
		return r, err
	}
	// Hold every connection until the client closes it (EOF), or ctx ends
	// and the set closes them all.
	for _, c := range conns.snapshot() {
		wg.Go(func() {
			var b [1]byte
			n, err := c.Read(b[:])
			switch {
			case n > 0:
				fail(fmt.Errorf("connection from %v: unexpected data after the echo", c.RemoteAddr()))
			case err != io.EOF:
				fail(fmt.Errorf("connection from %v: waiting for close: %w", c.RemoteAddr(), peer.CtxErr(ctx, err)))
			}
		})
	}
	wg.Wait()
	return r, errors.Join(errs...)
}

// runScale dials s.Conns connections, s.Concurrency at a time, checks each
// with one echo, and measures memory with all of them established and idle.
// Closing them at the end tells the server the run is over.
func runScale(ctx context.Context, s *peer.Spec) (peer.Result, error) {
	if err := raiseNofile(uint64(s.Conns) + fdSlack); err != nil {
		return peer.Result{}, err
	}
	conns := newConnSet(ctx)
	defer conns.close()
	d := dialer(s)
	var r peer.Result
	r.RSSBefore, r.HeapBefore = peer.Memory()

	m, err := peer.StartMeter(s)
	if err != nil {
		return r, err
	}
	var ok atomic.Int64
	var dialErr error
	r.HandshakeTime, dialErr = peer.DialAll(ctx, s, func(ctx context.Context, i int) error {
		if err := dialAndEcho(ctx, d, s, conns, i); err != nil {
			return err
		}
		ok.Add(1)
		return nil
	})
	ph, merr := m.Stop()
	r.Phase = ph
	r.Conns = int(ok.Load())
	r.RSSAfter, r.HeapAfter = peer.Memory()
	r.GoroutinesIdle = runtime.NumGoroutine()
	r.Notes = peer.ScaleNotes(&r, retransNotes(conns.snapshot()))
	r.Info = fmt.Sprintf("concurrency=%d", s.Concurrency)
	if dialErr != nil {
		dialErr = peer.CtxErr(ctx, dialErr)
	}
	return r, errors.Join(dialErr, merr)
}

// dialAndEcho establishes connection i, adds it to conns and checks it end
// to end with one echo of a message carrying i.
func dialAndEcho(ctx context.Context, d *net.Dialer, s *peer.Spec, conns *connSet, i int) error {
	c, err := d.DialContext(ctx, "tcp", s.Server.String())
	if err != nil {
		return fmt.Errorf("dial: %w", peer.CtxErr(ctx, err))
	}
	if !conns.add(c) {
		return ctx.Err()
	}
	// Only for the echo: a registration per held connection would add to
	// the memory the run measures.
	stop := context.AfterFunc(ctx, func() { c.Close() })
	defer stop()
	var msg, echo [echoLen]byte
	binary.BigEndian.PutUint64(msg[:], uint64(i)^s.Seed)
	if _, err := c.Write(msg[:]); err != nil {
		return fmt.Errorf("write: %w", peer.CtxErr(ctx, err))
	}
	if _, err := io.ReadFull(c, echo[:]); err != nil {
		return fmt.Errorf("read echo: %w", peer.CtxErr(ctx, err))
	}
	if !bytes.Equal(echo[:], msg[:]) {
		return fmt.Errorf("echo %x, sent %x", echo, msg)
	}
	return nil
}
