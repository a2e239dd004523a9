package quicgo

import (
	"context"
	"fmt"
	"io"

	"github.com/flightline/flightline/bench/internal/peer"
	"github.com/quic-go/quic-go"
)

func serveBulk(ctx context.Context, s *peer.Spec, sv *server, ready func()) (peer.Result, error) {
	ready()
	c, err := sv.accept(ctx)
	if err != nil {
		return peer.Result{}, err
	}
	r, err := peer.BulkServer(ctx, s, func(ctx context.Context) (io.ReadWriter, error) {
		st, err := c.AcceptStream(ctx)
		if err != nil {
			return nil, peer.CtxErr(ctx, err)
		}
		return st, nil
	}, finishStream)
	r.Notes = connNotes(c.ConnectionStats())
	endServer(ctx, c, err)
	return r, err
}

func runBulk(ctx context.Context, s *peer.Spec, cl *client) (peer.Result, error) {
	c, err := cl.dial(ctx)
	if err != nil {
		return peer.Result{}, err
	}
	r, err := peer.BulkClient(ctx, s, func(ctx context.Context, _ int) (io.ReadWriter, error) {
		st, err := c.OpenStreamSync(ctx)
		if err != nil {
			return nil, peer.CtxErr(ctx, err)
		}
		return st, nil
	}, func(_ int, rw io.ReadWriter) error { return finishStream(rw) }, chunk)
	r.Notes = connNotes(c.ConnectionStats())
	closeConn(c, err)
	return r, err
}

// finishStream sends FIN on a stream once its side is written (the data on
// the client, the ack on the server), so both directions end cleanly and
// quic-go can forget the stream.
func finishStream(rw io.ReadWriter) error {
	st, ok := rw.(*quic.Stream)
	if !ok {
		return fmt.Errorf("finish stream: %T is not a quic-go stream", rw)
	}
	if err := st.Close(); err != nil {
		return fmt.Errorf("finish stream %d: %w", st.StreamID(), err)
	}
	return nil
}
