package peer

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
)

// BulkClient drives the client side of a Bulk run over any stream-oriented
// peer: open(ctx, i) returns stream i (a connection, for peers without
// streams), WriteBulk sends it, and the phase ends when every stream's AckByte
// has been read back.
//
// open is called for all streams before the phase starts, so handshakes and
// stream setup are excluded; closeWrite (may be nil) half-closes a stream
// after its data, for peers that have it. The caller must make blocked
// writes and reads fail when ctx ends (e.g. context.AfterFunc closing the
// connection): BulkClient waits for its writers before it returns.
func BulkClient(ctx context.Context, s *Spec, open func(ctx context.Context, i int) (io.ReadWriter, error), closeWrite func(i int, rw io.ReadWriter) error, chunk int) (Result, error) {
	p := NewPattern(s.Seed)
	rws := make([]io.ReadWriter, s.Streams)
	for i := range rws {
		rw, err := open(ctx, i)
		if err != nil {
			return Result{}, fmt.Errorf("open stream %d: %w", i, err)
		}
		rws[i] = rw
	}
	m, err := StartMeter(s)
	if err != nil {
		return Result{}, err
	}
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		sent  int64
		errs  []error
		ackBf = make([][1]byte, s.Streams)
	)
	for i, rw := range rws {
		wg.Go(func() {
			n, err := WriteBulk(rw, s, p, i, chunk)
			if err == nil && closeWrite != nil {
				err = closeWrite(i, rw)
			}
			if err == nil {
				if _, err = io.ReadFull(rw, ackBf[i][:]); err == nil && ackBf[i][0] != AckByte {
					err = fmt.Errorf("stream %d: ack byte %q", i, ackBf[i][0])
				} else if err != nil {
					err = fmt.Errorf("stream %d: read ack: %w", i, err)
				}
			}
			mu.Lock()
			sent += n
			if err != nil {
				errs = append(errs, err)
			}
			mu.Unlock()
		})
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		// The caller closes the connections when ctx ends, which unblocks
		// the writers; wait for them so nothing outlives the run.
		<-done
		errs = append(errs, ctx.Err())
	}
	ph, perr := m.Stop()
	r := Result{Side: ClientSide, Phase: ph, Bytes: sent}
	return r, errors.Join(append(errs, perr)...)
}

// BulkServer serves the server side of a Bulk run: accept(ctx) returns the
// next incoming stream (or connection); each is read with ReadBulk, and
// AckByte is written back when it verified. The phase runs from the first
// accepted stream to the last ack.
func BulkServer(ctx context.Context, s *Spec, accept func(ctx context.Context) (io.ReadWriter, error), finish func(rw io.ReadWriter) error) (Result, error) {
	p := NewPattern(s.Seed)
	var (
		m    *Meter
		wg   sync.WaitGroup
		mu   sync.Mutex
		got  int64
		seen = make([]bool, s.Streams)
		errs []error
	)
	for range s.Streams {
		rw, err := accept(ctx)
		if err != nil {
			errs = append(errs, fmt.Errorf("accept: %w", err))
			break
		}
		if m == nil {
			if m, err = StartMeter(s); err != nil {
				return Result{}, err
			}
		}
		wg.Go(func() {
			buf := make([]byte, 256<<10)
			i, n, err := ReadBulk(rw, s, p, buf)
			if err == nil {
				if _, err = rw.Write([]byte{AckByte}); err != nil {
					err = fmt.Errorf("stream %d: write ack: %w", i, err)
				} else if finish != nil {
					err = finish(rw)
				}
			}
			mu.Lock()
			defer mu.Unlock()
			got += n
			if i >= 0 && err == nil {
				if seen[i] {
					err = fmt.Errorf("stream %d arrived twice", i)
				}
				seen[i] = true
			}
			if err != nil {
				errs = append(errs, err)
			}
		})
	}
	wg.Wait()
	r := Result{Side: ServerSide, Bytes: got}
	if m != nil {
		ph, err := m.Stop()
		r.Phase = ph
		errs = append(errs, err)
	}
	if got != s.Bytes && len(errs) == 0 {
		errs = append(errs, fmt.Errorf("received %d of %d bytes", got, s.Bytes))
	}
	return r, errors.Join(errs...)
}
