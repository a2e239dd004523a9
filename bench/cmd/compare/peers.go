package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"runtime/pprof"
	"time"

	"github.com/flightline/flightline/transport"
	"github.com/flightline/flightline/transport/link"
	"github.com/flightline/flightline/transport/udplink"
)

const (
	peerFlightline = "flightline"
	peerRaw        = "raw-udp"
	peerTCP        = "tcp"
	peerQUIC       = "quic-go"
)

// runFlightline moves size bytes over streams flightline streams of one
// connection between two UDP endpoints on 127.0.0.1, profiling the CPU
// during the transfer (not the handshake) into profile when it is set.
func runFlightline(ctx context.Context, streams int, size int64, profile string) (Result, error) {
	key, err := transport.GenerateKey()
	if err != nil {
		return Result{}, err
	}
	srv, err := transport.Listen("127.0.0.1:0", &transport.Config{PrivateKey: key, Datapath: "udp"})
	if err != nil {
		return Result{}, err
	}
	defer srv.Close()
	type accepted struct {
		c   *transport.Conn
		err error
	}
	acc := make(chan accepted, 1)
	go func() {
		c, err := srv.Accept(ctx)
		acc <- accepted{c, err}
	}()
	cc, err := transport.Dial(ctx, srv.LocalAddr().String(), srv.PublicKey(), &transport.Config{Datapath: "udp"})
	if err != nil {
		return Result{}, err
	}
	defer cc.Endpoint().Close()
	a := <-acc
	if a.err != nil {
		return Result{}, fmt.Errorf("accept: %w", a.err)
	}
	sc := a.c

	p := pipe{
		open: func(ctx context.Context) (io.Writer, func() error, error) {
			s, err := cc.OpenStreamSync(ctx)
			if err != nil {
				return nil, nil, err
			}
			return ctxWriter{ctx, s}, s.Close, nil
		},
		accept: func(ctx context.Context) (io.Reader, error) {
			s, err := sc.AcceptStream(ctx)
			if err != nil {
				return nil, err
			}
			return ctxReader{ctx, s}, nil
		},
	}
	if profile != "" {
		f, err := os.Create(profile)
		if err != nil {
			return Result{}, fmt.Errorf("create profile: %w", err)
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return Result{}, fmt.Errorf("start profile: %w", err)
		}
	}
	m, err := measure(ctx, p, streams, size)
	if profile != "" {
		pprof.StopCPUProfile()
	}
	st := cc.Stats()
	r := newResult(m)
	r.Notes = fmt.Sprintf("datapath %s (GSO %v, GRO %v), %s, %d retransmits, srtt %v",
		st.Datapath, st.Link.GSO, st.Link.GRO, st.Suite, st.PacketsRetransmitted, st.SmoothedRTT.Round(time.Microsecond))
	if profile != "" {
		r.Profile = profile
	}
	return r, err
}

type ctxWriter struct {
	ctx context.Context
	s   *transport.Stream
}

func (w ctxWriter) Write(p []byte) (int, error) { return w.s.WriteContext(w.ctx, p) }

type ctxReader struct {
	ctx context.Context
	s   *transport.Stream
}

func (r ctxReader) Read(p []byte) (int, error) { return r.s.ReadContext(r.ctx, p) }

// runRaw is the datapath ceiling: udplink.Blast of link.MaxPacketSize
// datagrams with the batching and offloads flightline uses, no protocol, no
// flow control (overrun shows as loss; goodput counts what arrived).
func runRaw(ctx context.Context, size int64) (Result, error) {
	lo := netip.AddrPortFrom(netip.AddrFrom4([4]byte{127, 0, 0, 1}), 0)
	tx, err := udplink.Listen(lo, udplink.Config{})
	if err != nil {
		return Result{}, err
	}
	defer tx.Close()
	rx, err := udplink.Listen(lo, udplink.Config{})
	if err != nil {
		return Result{}, err
	}
	defer rx.Close()
	cpu0 := cpuTime()
	res, err := udplink.Blast(ctx, tx, rx, size, link.MaxPacketSize)
	r := newResult(measurement{bytes: res.Bytes, elapsed: res.Duration, cpu: cpuTime() - cpu0})
	r.Loss = res.Loss()
	c := tx.Caps()
	r.Notes = fmt.Sprintf("%d-byte datagrams, GSO %v, GRO %v, %.1f%% lost to rx overrun",
		link.MaxPacketSize, c.GSO, rx.Caps().GRO, 100*res.Loss())
	return r, err
}

// runTCP moves size bytes over streams kernel TCP connections on loopback.
func runTCP(ctx context.Context, streams int, size int64) (Result, error) {
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", "127.0.0.1:0")
	if err != nil {
		return Result{}, err
	}
	defer ln.Close()
	// measure calls open from one goroutine, so conns needs no lock.
	var conns []net.Conn
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	accepted := make(chan net.Conn, streams)
	var d net.Dialer
	p := pipe{
		// open dials and accepts the server side at once: a completed
		// dial is already in the accept queue, so Accept does not block.
		open: func(ctx context.Context) (io.Writer, func() error, error) {
			c, err := d.DialContext(ctx, "tcp", ln.Addr().String())
			if err != nil {
				return nil, nil, err
			}
			conns = append(conns, c)
			s, err := ln.Accept()
			if err != nil {
				return nil, nil, fmt.Errorf("accept: %w", err)
			}
			conns = append(conns, s)
			for _, c := range []net.Conn{c, s} {
				context.AfterFunc(ctx, func() { c.SetDeadline(time.Unix(1, 0)) })
			}
			accepted <- s
			return c, c.(*net.TCPConn).CloseWrite, nil
		},
		accept: func(ctx context.Context) (io.Reader, error) {
			select {
			case c := <-accepted:
				return c, nil
			case <-ctx.Done():
				return nil, ctx.Err()
			}
		},
	}
	m, err := measure(ctx, p, streams, size)
	r := newResult(m)
	r.Notes = "kernel TCP over loopback, default buffers"
	return r, err
}
