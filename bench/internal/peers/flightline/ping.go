package flightline

import (
	"context"
	"errors"
	"fmt"

	"github.com/flightline/flightline/bench/internal/peer"
)

// servePing accepts one connection and echoes on its first stream with
// peer.PingServer.
func (p *flPeer) servePing(ctx context.Context, s *peer.Spec, k sideKeys, ready func()) (peer.Result, error) {
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
	st, err := c.AcceptStream(ctx)
	if err != nil {
		return peer.Result{}, fmt.Errorf("accept stream: %w", peer.CtxErr(ctx, err))
	}
	r, err := peer.PingServer(ctx, s, ctxStream{ctx, st})
	st.Close()
	// The client is waiting for the last echo: let it be acknowledged.
	closeGracefully(ctx, c)
	stats := c.Stats()
	r.Info, r.Notes = p.connInfo(stats), connNotes(stats)
	return r, errors.Join(err, checkStats(stats))
}

// runPing dials one connection and runs peer.PingClient on one stream. The
// stream is opened before the driver starts; it reaches the server with the
// first (warm-up) message.
func (p *flPeer) runPing(ctx context.Context, s *peer.Spec, k sideKeys) (peer.Result, error) {
	ep, err := p.bind(ctx, s, k)
	if err != nil {
		return peer.Result{}, err
	}
	defer ep.Close()
	c, err := p.dial(ctx, ep, s, k)
	if err != nil {
		return peer.Result{}, err
	}
	st, err := c.OpenStreamSync(ctx)
	if err != nil {
		return peer.Result{}, fmt.Errorf("open stream: %w", peer.CtxErr(ctx, err))
	}
	r, err := peer.PingClient(ctx, s, ctxStream{ctx, st})
	stats := c.Stats()
	st.Close()
	closeGracefully(ctx, c)
	r.Info, r.Notes = p.connInfo(stats), connNotes(stats)
	return r, errors.Join(err, checkStats(stats))
}
