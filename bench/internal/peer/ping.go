package peer

import (
	"bytes"
	"context"
	"fmt"
	"io"
)

// PingClient drives the client side of a Ping run over one stream-oriented
// connection: Warmup unrecorded round trips, then Messages recorded ones, each
// a write of MessageSize pattern bytes and a full read of the echo, which must
// match.
func PingClient(ctx context.Context, s *Spec, rw io.ReadWriter) (Result, error) {
	msg := NewPattern(s.Seed).Window(0, 0, s.MessageSize)
	echo := make([]byte, s.MessageSize)
	rtts := make([]int64, 0, s.Messages)
	var m *Meter
	for i := range s.Warmup + s.Messages {
		if i == s.Warmup {
			var err error
			if m, err = StartMeter(s); err != nil {
				return Result{}, err
			}
		}
		if err := ctx.Err(); err != nil {
			return Result{RTTs: rtts}, fmt.Errorf("after %d round trips: %w", i, err)
		}
		t0 := Monotonic()
		if _, err := rw.Write(msg); err != nil {
			return Result{RTTs: rtts}, fmt.Errorf("round trip %d: write: %w", i, err)
		}
		if _, err := io.ReadFull(rw, echo); err != nil {
			return Result{RTTs: rtts}, fmt.Errorf("round trip %d: read: %w", i, err)
		}
		rtt := Monotonic() - t0
		if !bytes.Equal(echo, msg) {
			return Result{RTTs: rtts}, fmt.Errorf("round trip %d: echo differs", i)
		}
		if i >= s.Warmup {
			rtts = append(rtts, rtt)
		}
	}
	ph, err := m.Stop()
	return Result{Side: ClientSide, Phase: ph, RTTs: rtts, Bytes: int64(len(rtts) * s.MessageSize)}, err
}

// PingServer echoes Warmup+Messages messages of MessageSize bytes on rw.
func PingServer(ctx context.Context, s *Spec, rw io.ReadWriter) (Result, error) {
	buf := make([]byte, s.MessageSize)
	var m *Meter
	for i := range s.Warmup + s.Messages {
		if i == s.Warmup {
			var err error
			if m, err = StartMeter(s); err != nil {
				return Result{}, err
			}
		}
		if err := ctx.Err(); err != nil {
			return Result{}, fmt.Errorf("after %d round trips: %w", i, err)
		}
		if _, err := io.ReadFull(rw, buf); err != nil {
			return Result{}, fmt.Errorf("round trip %d: read: %w", i, err)
		}
		if _, err := rw.Write(buf); err != nil {
			return Result{}, fmt.Errorf("round trip %d: write: %w", i, err)
		}
	}
	r := Result{Side: ServerSide}
	if m != nil {
		ph, err := m.Stop()
		r.Phase = ph
		return r, err
	}
	return r, nil
}
