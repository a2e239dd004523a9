package e2e

import (
	"context"
	"errors"
	"fmt"
	"io"
	"runtime"
	"testing"
	"time"

	"github.com/flightline/flightline/testnet"
	"golang.org/x/sys/unix"
)

// BenchmarkVethGoodput measures goodput and CPU cost of one connection over
// a plain veth pair (no hop, no impairment), for 1 and 8 streams, on udp and
// xdp (native), with the application goroutines pinned and unpinned.
//
// Metrics:
//   - MB/s: payload bytes delivered to the receiving application per second
//     (10^6 bytes), over the whole timed loop.
//   - cpu-s/GiB: getrusage(RUSAGE_SELF) user+sys delta over the loop, divided
//     by GiB delivered. Both endpoints run in this process, so it is the cost
//     of sending and receiving together, including kernel time charged to
//     our threads (syscalls, AF_XDP copies) but not softirq work the kernel
//     does in other contexts.
//
// Pinning: each sender goroutine locks its OS thread and sets that thread's
// affinity to CPU 0 (unix.SchedSetaffinity(0, ...), 0 = calling thread);
// each receiver goroutine does the same for CPU 1. The threads exit with the
// goroutines (they stay locked), so no other goroutine inherits the mask.
// Only the application's Write and Read loops are pinned: the transport's
// per-connection send loop and per-endpoint receive loop, and the rest of
// the runtime, still run wherever the Go scheduler puts them.
func BenchmarkVethGoodput(b *testing.B) {
	testnet.RequirePrivileged(b)
	for _, dp := range []datapath{
		{"udp", kindUDP, kindUDP},
		{"xdp", kindXDPNative, kindXDPNative},
	} {
		for _, streams := range []int{1, 8} {
			for _, pin := range []bool{false, true} {
				name := fmt.Sprintf("%s/streams=%d/pinned=%v", dp.name, streams, pin)
				b.Run(name, func(b *testing.B) {
					if pin && runtime.NumCPU() < 2 {
						b.Skip("pinning needs 2 CPUs")
					}
					n := testnet.New(b, testnet.Config{})
					p := connect(b, n, dp, nil, nil)
					const perOp = 64 * MiB
					var moved int64
					var before, after unix.Rusage
					unix.Getrusage(unix.RUSAGE_SELF, &before)
					start := time.Now()
					for b.Loop() {
						moved += benchTransfer(b, p, streams, perOp/int64(streams), pin)
					}
					elapsed := time.Since(start)
					unix.Getrusage(unix.RUSAGE_SELF, &after)
					cpu := tvSeconds(after.Utime) - tvSeconds(before.Utime) + tvSeconds(after.Stime) - tvSeconds(before.Stime)
					b.ReportMetric(float64(moved)/elapsed.Seconds()/1e6, "MB/s")
					b.ReportMetric(cpu/(float64(moved)/GiB), "cpu-s/GiB")
					if st := p.cc.Stats(); st.FlightUnderflows != 0 {
						b.Fatalf("flight underflows: %d", st.FlightUnderflows)
					}
				})
			}
		}
	}
}

func tvSeconds(tv unix.Timeval) float64 { return float64(tv.Sec) + float64(tv.Usec)/1e6 }

// pinThread locks the calling goroutine to its OS thread and binds that
// thread to cpu. The goroutine must not unlock: its thread then exits with it.
func pinThread(cpu int) error {
	runtime.LockOSThread()
	var set unix.CPUSet
	set.Set(cpu)
	if err := unix.SchedSetaffinity(0, &set); err != nil {
		return fmt.Errorf("sched_setaffinity cpu %d: %w", cpu, err)
	}
	return nil
}

// benchTransfer sends size bytes (a constant buffer: the benchmark measures
// the transport, not a PRNG or a hash) on each of streams new streams and
// returns the bytes the receivers read.
func benchTransfer(b *testing.B, p *pair, streams int, size int64, pin bool) int64 {
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	type res struct {
		n   int64
		err error
	}
	sent := make(chan res, streams)
	recv := make(chan res, streams)
	for range streams {
		s, err := p.cc.OpenStream()
		if err != nil {
			b.Fatal(err)
		}
		go func() {
			if pin {
				if err := pinThread(0); err != nil {
					sent <- res{err: err}
					return
				}
			}
			buf := make([]byte, 256<<10)
			var n int64
			for n < size {
				k, err := s.WriteContext(ctx, buf[:min(int64(len(buf)), size-n)])
				n += int64(k)
				if err != nil {
					sent <- res{n, err}
					return
				}
			}
			sent <- res{n, s.Close()}
		}()
	}
	for range streams {
		rs, err := p.sc.AcceptStream(ctx)
		if err != nil {
			b.Fatal(err)
		}
		go func() {
			if pin {
				if err := pinThread(1); err != nil {
					recv <- res{err: err}
					return
				}
			}
			buf := make([]byte, 256<<10)
			var n int64
			for {
				k, err := rs.ReadContext(ctx, buf)
				n += int64(k)
				if errors.Is(err, io.EOF) {
					recv <- res{n, nil}
					return
				}
				if err != nil {
					recv <- res{n, err}
					return
				}
			}
		}()
	}
	var total int64
	for range streams {
		if r := <-sent; r.err != nil {
			b.Fatalf("send: %v", r.err)
		}
		r := <-recv
		if r.err != nil || r.n != size {
			b.Fatalf("receive: %d of %d bytes: %v", r.n, size, r.err)
		}
		total += r.n
	}
	return total
}
