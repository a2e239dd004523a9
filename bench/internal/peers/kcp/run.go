package kcp

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/flightline/flightline/bench/internal/peer"
	kcpgo "github.com/xtaci/kcp-go/v5"
)

func serveBulk(ctx context.Context, s *peer.Spec, l *listener) (peer.Result, error) {
	r, err := peer.BulkServer(ctx, s, func(ctx context.Context) (io.ReadWriter, error) {
		return l.accept(ctx)
	}, nil)
	if err == nil {
		err = drainAll(ctx, l.sessions.snapshot())
	}
	r.Notes = snmpNotes()
	return r, err
}

func runBulk(ctx context.Context, s *peer.Spec, block kcpgo.BlockCrypt) (peer.Result, error) {
	ss := newSessions(ctx)
	defer ss.close()
	r, err := peer.BulkClient(ctx, s, func(ctx context.Context, _ int) (io.ReadWriter, error) {
		return dial(ctx, s, block, ss)
	}, nil, chunk)
	if err == nil {
		err = linger(ss.snapshot())
	}
	r.Notes = snmpNotes()
	return r, err
}

func servePing(ctx context.Context, s *peer.Spec, l *listener) (peer.Result, error) {
	sess, err := l.accept(ctx)
	if err != nil {
		return peer.Result{}, err
	}
	r, err := peer.PingServer(ctx, s, sess)
	if err == nil {
		err = drainAll(ctx, []*kcpgo.UDPSession{sess})
	}
	r.Notes = snmpNotes()
	return r, err
}

func runPing(ctx context.Context, s *peer.Spec, block kcpgo.BlockCrypt) (peer.Result, error) {
	ss := newSessions(ctx)
	defer ss.close()
	sess, err := dial(ctx, s, block, ss)
	if err != nil {
		return peer.Result{}, err
	}
	r, err := peer.PingClient(ctx, s, sess)
	if err == nil {
		err = linger([]*kcpgo.UDPSession{sess})
	}
	r.Notes = snmpNotes()
	return r, err
}

// KCP has no close, so a server that closed its session right after its
// last write (the bulk ack, the last echo) could take the retransmission of
// a lost packet with it. It waits instead until everything it sent is
// acknowledged (see drain), or closeLinger passes: the client may be gone
// by then, having read the data and exited while its ACK was lost, which
// costs the server the linger and nothing else.
const closeLinger = time.Second

// linger keeps the client's sessions for one update interval after the
// run, checking that nothing more arrives. The ACK of the server's last
// data is queued for kcp-go's sender goroutine when that data arrives,
// which is before the client can read it, but kcp-go has no flush to wait
// for it: exiting at once lost it in a third of the Ping runs, and the
// server then waited closeLinger for it. One update interval, the pace at
// which kcp-go itself flushes, gives that goroutine ample time.
func linger(all []*kcpgo.UDPSession) error {
	deadline := time.Now().Add(interval * time.Millisecond)
	for _, sess := range all {
		sess.SetReadDeadline(deadline)
		var b [1]byte
		n, err := sess.Read(b[:])
		switch {
		case n > 0:
			return fmt.Errorf("session to %v: unexpected data after the run", sess.RemoteAddr())
		case isTimeout(err):
		case err != nil:
			return fmt.Errorf("session to %v: %w", sess.RemoteAddr(), err)
		}
	}
	return nil
}

// drainAll drains every session with one shared deadline.
func drainAll(ctx context.Context, all []*kcpgo.UDPSession) error {
	deadline := time.Now().Add(closeLinger)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	var errs []error
	for _, sess := range all {
		if err := drain(sess, deadline); err != nil {
			errs = append(errs, fmt.Errorf("session from %v: %w", sess.RemoteAddr(), peer.CtxErr(ctx, err)))
		}
	}
	return errors.Join(errs...)
}

// drain waits until all data sent on sess is acknowledged, or deadline.
// kcp-go has no call for that, but its Write waits while the unacknowledged
// segments fill the send window: with a window of one, an empty Write
// (which sends nothing) returns exactly when none is left. The session is
// done sending, so the smaller window changes nothing else.
func drain(sess *kcpgo.UDPSession, deadline time.Time) error {
	sess.SetWindowSize(1, 0) // 0: receive window unchanged
	sess.SetWriteDeadline(deadline)
	if _, err := sess.Write(nil); err != nil && !isTimeout(err) {
		return fmt.Errorf("wait for acknowledgements: %w", err)
	}
	return nil
}

func isTimeout(err error) bool {
	var te interface{ Timeout() bool }
	return errors.As(err, &te) && te.Timeout()
}

// snmpNotes are kcp-go's counters for the run, named like the other peers'
// notes. kcp-go keeps them process-wide, and each side of a run is its own
// process, so they are this side's. Retransmissions include fast and early
// retransmits as well as RTO-inferred losses ("lost").
func snmpNotes() map[string]float64 {
	sn := kcpgo.DefaultSnmp.Copy()
	n := map[string]float64{
		"packets_sent":     float64(sn.OutPkts),
		"packets_received": float64(sn.InPkts),
		"segs_out":         float64(sn.OutSegs),
		"retransmits":      float64(sn.RetransSegs),
		"fast_retransmits": float64(sn.FastRetransSegs),
		"lost":             float64(sn.LostSegs),
		"csum_errors":      float64(sn.InCsumErrors),
	}
	if sn.OutSegs > 0 {
		n["retransmit_pct"] = 100 * float64(sn.RetransSegs) / float64(sn.OutSegs)
	}
	return n
}
