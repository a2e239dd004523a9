package quicgo

import (
	"context"
	"fmt"

	"github.com/flightline/flightline/bench/internal/peer"
)

func servePing(ctx context.Context, s *peer.Spec, sv *server, ready func()) (peer.Result, error) {
	ready()
	c, err := sv.accept(ctx)
	if err != nil {
		return peer.Result{}, err
	}
	// The stream becomes visible with the client's first (warmup) message,
	// so accepting it costs no round trip of its own.
	st, err := c.AcceptStream(ctx)
	if err != nil {
		return peer.Result{}, fmt.Errorf("accept stream: %w", peer.CtxErr(ctx, err))
	}
	r, err := peer.PingServer(ctx, s, st)
	r.Notes = connNotes(c.ConnectionStats())
	endServer(ctx, c, err)
	return r, err
}

func runPing(ctx context.Context, s *peer.Spec, cl *client) (peer.Result, error) {
	c, err := cl.dial(ctx)
	if err != nil {
		return peer.Result{}, err
	}
	st, err := c.OpenStreamSync(ctx)
	if err != nil {
		return peer.Result{}, fmt.Errorf("open stream: %w", peer.CtxErr(ctx, err))
	}
	r, err := peer.PingClient(ctx, s, st)
	r.Notes = connNotes(c.ConnectionStats())
	closeConn(c, err)
	return r, err
}
