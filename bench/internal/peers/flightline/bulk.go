package flightline

import (
	"context"
	"errors"
	"io"

	"github.com/flightline/flightline/bench/internal/peer"
)

// bulkChunk is the size of each Write: large enough that the per-call cost
// (locking, scheduling the send loop) is negligible against the copy into
// the stream's send buffer.
const bulkChunk = 256 << 10

// serveBulk accepts one connection and reads s.Streams streams from it with
// peer.BulkServer, acknowledging each and then half-closing it.
func (p *flPeer) serveBulk(ctx context.Context, s *peer.Spec, k sideKeys, ready func()) (peer.Result, error) {
	ep, err := p.listen(ctx, s, k, nil)
	if err != nil {
		return peer.Result{}, err
	}
	defer ep.Close()
	ready()
	c, err := p.accept(ctx, ep)
	if err != nil {
		return peer.Result{}, err
	}
	r, err := peer.BulkServer(ctx, s,
		func(ctx context.Context) (io.ReadWriter, error) {
			st, err := c.AcceptStream(ctx)
			if err != nil {
				return nil, peer.CtxErr(ctx, err)
			}
			return ctxStream{ctx, st}, nil
		},
		func(rw io.ReadWriter) error { return rw.(ctxStream).Close() })
	// The client's phase ends when our ack bytes arrive: close only once
	// they are acknowledged, or the client could miss one.
	closeGracefully(ctx, c)
	st := c.Stats()
	r.Info, r.Notes = p.connInfo(st), connNotes(st)
	return r, errors.Join(err, checkStats(st))
}

// runBulk dials one connection, opens s.Streams streams on it and sends them
// with peer.BulkClient, half-closing each after its data.
func (p *flPeer) runBulk(ctx context.Context, s *peer.Spec, k sideKeys) (peer.Result, error) {
	ep, err := p.bind(ctx, s, k)
	if err != nil {
		return peer.Result{}, err
	}
	defer ep.Close()
	c, err := p.dial(ctx, ep, s, k)
	if err != nil {
		return peer.Result{}, err
	}
	r, err := peer.BulkClient(ctx, s,
		func(ctx context.Context, i int) (io.ReadWriter, error) {
			st, err := c.OpenStreamSync(ctx)
			if err != nil {
				return nil, peer.CtxErr(ctx, err)
			}
			return ctxStream{ctx, st}, nil
		},
		func(_ int, rw io.ReadWriter) error { return rw.(ctxStream).Close() },
		bulkChunk)
	// Snapshot before closing: the counters describe the measured phase
	// (plus the handshake), not the close.
	st := c.Stats()
	closeGracefully(ctx, c)
	r.Info, r.Notes = p.connInfo(st), connNotes(st)
	return r, errors.Join(err, checkStats(st))
}
