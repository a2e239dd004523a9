package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"sync"
	"syscall"
	"time"
)

// chunk is the size of one Write; the same for every peer.
const chunk = 1 << 20

// pipe abstracts one peer's connection for measure: open starts a sending
// stream (or TCP connection), accept waits for the receiving end of the next
// one. Both must return promptly, and their readers and writers must fail,
// once ctx is done; measure relies on that to never leak a blocked goroutine.
type pipe struct {
	open   func(ctx context.Context) (w io.Writer, closeWrite func() error, err error)
	accept func(ctx context.Context) (io.Reader, error)
}

// measurement is what measure saw: bytes delivered, wall time from the first
// write to the last EOF, and process CPU time (both ends) in between.
type measurement struct {
	bytes   int64
	elapsed time.Duration
	cpu     time.Duration
}

// payload is the data every sender writes: random, so no layer can compress
// it, and read-only, so concurrent writers may share it.
var payload = func() []byte {
	r := rand.New(rand.NewPCG(1, 2))
	b := make([]byte, chunk)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}()

// measure opens streams sending streams, then, with the clock running,
// writes size/streams bytes on each and reads them back on the accepted
// ends until EOF. Every byte count is checked.
func measure(ctx context.Context, p pipe, streams int, size int64) (measurement, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	per := size / int64(streams)
	type sender struct {
		w          io.Writer
		closeWrite func() error
	}
	senders := make([]sender, streams)
	for i := range senders {
		w, cw, err := p.open(ctx)
		if err != nil {
			return measurement{}, fmt.Errorf("open stream %d: %w", i, err)
		}
		senders[i] = sender{w, cw}
	}

	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		errs []error
	)
	fail := func(err error) {
		mu.Lock()
		errs = append(errs, err)
		mu.Unlock()
		cancel() // unblock everyone else
	}
	cpu0 := cpuTime()
	start := time.Now()
	for i, s := range senders {
		wg.Go(func() {
			for left := per; left > 0; {
				n, err := s.w.Write(payload[:min(int64(chunk), left)])
				left -= int64(n)
				if err != nil {
					fail(fmt.Errorf("write stream %d: %w", i, err))
					return
				}
			}
			if err := s.closeWrite(); err != nil {
				fail(fmt.Errorf("close stream %d: %w", i, err))
			}
		})
	}
	wg.Go(func() {
		var readers sync.WaitGroup
		defer readers.Wait()
		for i := range streams {
			r, err := p.accept(ctx)
			if err != nil {
				fail(fmt.Errorf("accept stream %d: %w", i, err))
				return
			}
			readers.Go(func() {
				n, err := drain(r)
				switch {
				case err != nil:
					fail(fmt.Errorf("read stream %d after %d bytes: %w", i, n, err))
				case n != per:
					fail(fmt.Errorf("stream %d delivered %d bytes, want %d", i, n, per))
				}
			})
		}
	})
	wg.Wait()
	m := measurement{bytes: per * int64(streams), elapsed: time.Since(start), cpu: cpuTime() - cpu0}
	if len(errs) > 0 {
		// Later errors are mostly the cancellation the first one caused.
		return m, errs[0]
	}
	return m, ctx.Err()
}

// drain reads r to EOF with a buffer large enough that per-call overhead
// does not dominate.
func drain(r io.Reader) (int64, error) {
	buf := make([]byte, 256<<10)
	var total int64
	for {
		n, err := r.Read(buf)
		total += int64(n)
		if errors.Is(err, io.EOF) {
			return total, nil
		}
		if err != nil {
			return total, err
		}
	}
}

// cpuTime is the user+system CPU time of the whole process.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
