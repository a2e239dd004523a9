package flightline

import (
	"context"

	"github.com/flightline/flightline/transport"
)

// ctxStream is a Stream whose Read and Write end when ctx does, so the
// generic drivers (which only know io.ReadWriter) stop at the run's deadline
// with the context's error rather than the endpoint's "closed".
type ctxStream struct {
	ctx context.Context
	s   *transport.Stream
}

func (c ctxStream) Read(p []byte) (int, error)  { return c.s.ReadContext(c.ctx, p) }
func (c ctxStream) Write(p []byte) (int, error) { return c.s.WriteContext(c.ctx, p) }

// Close finishes the send side only. transport.Stream.Close is a
// half-close: it queues FIN after the buffered data and leaves the read side
// open, so a bulk sender can still read the receiver's ack byte.
func (c ctxStream) Close() error { return c.s.Close() }
