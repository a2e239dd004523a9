package transport

// Throughput and memory benchmarks of the whole transport. Run together with
// the raw datapath ceiling so one run shows how much of it the protocol keeps:
//
//	go test -run '^$' -bench 'BulkGoodputUDP|RawBlastCeiling' -benchtime 256x ./transport
//
// One op of the goodput benchmarks is one 1 MiB chunk written by the client
// and read (and discarded) by the server over one stream.
//
// Latency: the ping-pong benchmarks report round-trip p50/p99 next to the
// same exchange over plain UDP sockets; -cpu 1 serialises every goroutine
// handoff on the path, as in a process pinned to one CPU:
//
//	go test -run '^$' -bench 'PingPong' -benchtime 20000x -cpu 1,2 ./transport

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"runtime"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/flightline/flightline/transport/link"
	"github.com/flightline/flightline/transport/memlink"
	"github.com/flightline/flightline/transport/udplink"
)

const (
	benchChunk = 1 << 20
	// benchMaxChunks caps one goodput run (4 GiB) so a large b.N from a
	// long -benchtime stays bounded; the reported MB/s uses what was sent.
	benchMaxChunks = 4096
	// benchWarmup is written before measuring so handshake, slow start and
	// buffer growth are not charged to the steady state.
	benchWarmup = 8 << 20
	// benchDeadline bounds one benchmark run; a stalled transfer fails
	// instead of hanging the run.
	benchDeadline = 3 * time.Minute
)

var benchLoopback = netip.AddrPortFrom(netip.AddrFrom4([4]byte{127, 0, 0, 1}), 0)

// benchConfig is testConfig without the flight invariant checker, which
// walks the tracker after every operation and would dominate the profile.
func benchConfig(tb testing.TB) *Config {
	tb.Helper()
	k, err := GenerateKey()
	if err != nil {
		tb.Fatal(err)
	}
	return &Config{PrivateKey: k}
}

// newUDPBenchPair connects two endpoints over real loopback UDP sockets.
func newUDPBenchPair(tb testing.TB) *pair {
	tb.Helper()
	a, err := udplink.Listen(benchLoopback, udplink.Config{})
	if err != nil {
		tb.Fatalf("listen server: %v", err)
	}
	c, err := udplink.Listen(benchLoopback, udplink.Config{})
	if err != nil {
		a.Close()
		tb.Fatalf("listen client: %v", err)
	}
	return newPairOver(tb, a, c, benchConfig(tb), benchConfig(tb))
}

func newMemBenchPair(tb testing.TB) *pair {
	tb.Helper()
	a, c := memlink.NewPair(memlink.Config{Seed: 1})
	return newPairOver(tb, a, c, benchConfig(tb), benchConfig(tb))
}

// bulkResult is one measured transfer.
type bulkResult struct {
	bytes    int64
	elapsed  time.Duration
	mallocs  uint64 // whole process, both endpoints
	packets  uint64 // client PacketsSent during the measurement
	sentPeer uint64 // server PacketsSent (ACKs) during the measurement
}

func (r bulkResult) mbps() float64 { return float64(r.bytes) / r.elapsed.Seconds() / 1e6 }

func (r bulkResult) allocsPerPacket() float64 {
	if r.packets == 0 {
		return 0
	}
	return float64(r.mallocs) / float64(r.packets)
}

// bulkTransfer opens one stream on p, warms it up with benchWarmup bytes,
// then (with the benchmark timer running, if b is non-nil) writes chunks ×
// benchChunk bytes while the server reads and discards them, and waits for
// the server to see EOF.
func bulkTransfer(tb testing.TB, b *testing.B, p *pair, chunks int) bulkResult {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), benchDeadline)
	defer cancel()
	s, err := p.clientConn.OpenStream()
	if err != nil {
		tb.Fatalf("open stream: %v", err)
	}
	// The stream is announced by its first frame, so write before Accept.
	data := randomData(1, benchChunk)
	const first = 4096
	if _, err := s.WriteContext(ctx, data[:first]); err != nil {
		tb.Fatalf("first write: %v", err)
	}
	rs, err := p.serverConn.AcceptStream(ctx)
	if err != nil {
		tb.Fatalf("accept stream: %v", err)
	}
	var received atomic.Int64
	readDone := make(chan error, 1)
	go func() {
		buf := make([]byte, 256<<10)
		for {
			n, err := rs.ReadContext(ctx, buf)
			received.Add(int64(n))
			if err != nil {
				if errors.Is(err, io.EOF) {
					err = nil
				}
				readDone <- err
				return
			}
		}
	}()
	for w := first; w < benchWarmup; {
		n, err := s.WriteContext(ctx, data[:min(benchChunk, benchWarmup-w)])
		w += n
		if err != nil {
			tb.Fatalf("warm-up write: %v", err)
		}
	}
	for received.Load() < benchWarmup {
		select {
		case err := <-readDone:
			tb.Fatalf("reader ended during warm-up: %v", err)
		case <-ctx.Done():
			tb.Fatalf("warm-up: %v (received %d)", ctx.Err(), received.Load())
		case <-time.After(time.Millisecond):
		}
	}

	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	c0, s0 := p.clientConn.Stats(), p.serverConn.Stats()
	base := received.Load()
	if b != nil {
		b.ResetTimer()
	}
	start := time.Now()
	for range chunks {
		if _, err := s.WriteContext(ctx, data); err != nil {
			tb.Fatalf("write: %v", err)
		}
	}
	if err := s.Close(); err != nil {
		tb.Fatalf("close stream: %v", err)
	}
	if err := <-readDone; err != nil {
		tb.Fatalf("read: %v (received %d of %d)", err, received.Load()-base, int64(chunks)*benchChunk)
	}
	elapsed := time.Since(start)
	if b != nil {
		b.StopTimer()
	}
	runtime.ReadMemStats(&after)
	c1, s1 := p.clientConn.Stats(), p.serverConn.Stats()
	if got, want := received.Load()-base, int64(chunks)*benchChunk; got != want {
		tb.Fatalf("received %d bytes, want %d", got, want)
	}
	if c1.FlightUnderflows != 0 {
		tb.Fatalf("flight underflows: %d", c1.FlightUnderflows)
	}
	return bulkResult{
		bytes:    int64(chunks) * benchChunk,
		elapsed:  elapsed,
		mallocs:  after.Mallocs - before.Mallocs,
		packets:  c1.PacketsSent - c0.PacketsSent,
		sentPeer: s1.PacketsSent - s0.PacketsSent,
	}
}

func benchmarkBulk(b *testing.B, p *pair) {
	chunks := b.N
	if chunks > benchMaxChunks {
		b.Logf("b.N=%d capped at %d chunks", b.N, benchMaxChunks)
		chunks = benchMaxChunks
	}
	b.SetBytes(benchChunk)
	b.ReportAllocs()
	r := bulkTransfer(b, b, p, chunks)
	st := p.clientConn.Stats()
	b.ReportMetric(r.mbps(), "goodput-MB/s")
	b.ReportMetric(r.allocsPerPacket(), "allocs/pkt")
	b.ReportMetric(float64(r.packets)/r.elapsed.Seconds(), "pkts/s")
	if r.packets > 0 {
		b.ReportMetric(float64(r.sentPeer)/float64(r.packets), "acks/pkt")
	}
	b.ReportMetric(float64(st.PacketsRetransmitted), "retransmits")
	if ul, ok := p.client.Link().(*udplink.Link); ok {
		// Whole-run datapath batching (warm-up included): how well the
		// send loop fills sendmmsg and GSO.
		ls := ul.Stats()
		if ls.SyscallsOut > 0 {
			b.ReportMetric(float64(ls.DatagramsOut)/float64(ls.SyscallsOut), "pkts/sendmmsg")
		}
	}
}

// BenchmarkBulkGoodputUDP is one stream of bulk data between two endpoints
// over loopback UDP sockets: the transport's goodput with real syscalls.
// allocs/pkt (process mallocs per client data packet, both endpoints
// included) should stay below 0.1 in steady state.
func BenchmarkBulkGoodputUDP(b *testing.B) {
	benchmarkBulk(b, newUDPBenchPair(b))
}

// BenchmarkBulkGoodputMem is BenchmarkBulkGoodputUDP over an unimpaired
// memlink pair: the protocol's own cost (crypto, framing, ACKs, scheduling)
// without syscalls.
func BenchmarkBulkGoodputMem(b *testing.B) {
	benchmarkBulk(b, newMemBenchPair(b))
}

// BenchmarkRawBlastCeiling is the datapath ceiling that
// BenchmarkBulkGoodputUDP is compared with: udplink.Blast of 1452-byte
// datagrams over loopback with the same batching and offloads, no
// protocol. One op is 1 MiB, as in the goodput benchmarks.
func BenchmarkRawBlastCeiling(b *testing.B) {
	tx, err := udplink.Listen(benchLoopback, udplink.Config{})
	if err != nil {
		b.Fatal(err)
	}
	defer tx.Close()
	rx, err := udplink.Listen(benchLoopback, udplink.Config{})
	if err != nil {
		b.Fatal(err)
	}
	defer rx.Close()
	chunks := min(b.N, benchMaxChunks)
	ctx, cancel := context.WithTimeout(context.Background(), benchDeadline)
	defer cancel()
	b.SetBytes(benchChunk)
	b.ResetTimer()
	res, err := udplink.Blast(ctx, tx, rx, int64(chunks)*benchChunk, link.MaxPacketSize)
	b.StopTimer()
	if err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(res.BytesPerSec()/1e6, "goodput-MB/s")
	b.ReportMetric(res.PacketsPerSec(), "pkts/s")
	b.ReportMetric(100*res.Loss(), "loss-%")
}

// rssLimit is the resident-memory budget of a 1 GiB transfer with both
// endpoints in one process and default windows.
const rssLimit = 64 << 20

var rss1GiB struct {
	done           bool
	peak, before   float64 // MiB
	mbps           float64
	elapsedSeconds float64
}

// BenchmarkTransfer1GiBRSS transfers 1 GiB over loopback UDP once per
// benchmark run, whatever b.N (the framework's b.N=1 probe measures; later
// calls with a larger b.N report that result, so ns/op is meaningless) and reports the peak
// resident set size of the process, which holds both endpoints. VmHWM is
// reset through /proc/self/clear_refs first, so earlier benchmarks in the
// same run do not count. It fails if the peak exceeds rssLimit.
func BenchmarkTransfer1GiBRSS(b *testing.B) {
	if !rss1GiB.done || b.N == 1 {
		runtime.GC()
		debug.FreeOSMemory()
		resetPeakRSS(b)
		before, err := readProcStatus("VmRSS")
		if err != nil {
			b.Fatal(err)
		}
		p := newUDPBenchPair(b)
		r := bulkTransfer(b, nil, p, 1024)
		peak, err := readProcStatus("VmHWM")
		if err != nil {
			b.Fatal(err)
		}
		rss1GiB.done = true
		rss1GiB.peak, rss1GiB.before = peak, before
		rss1GiB.mbps, rss1GiB.elapsedSeconds = r.mbps(), r.elapsed.Seconds()
		b.Logf("1 GiB in %.2fs (%.0f MB/s); RSS before %.1f MiB, peak %.1f MiB",
			r.elapsed.Seconds(), r.mbps(), before, peak)
	}
	b.ReportMetric(rss1GiB.peak, "peak-rss-MiB")
	b.ReportMetric(rss1GiB.peak-rss1GiB.before, "rss-growth-MiB")
	b.ReportMetric(rss1GiB.mbps, "goodput-MB/s")
	if rss1GiB.peak > rssLimit>>20 {
		b.Errorf("peak RSS %.1f MiB exceeds %d MiB", rss1GiB.peak, rssLimit>>20)
	}
}

// resetPeakRSS sets VmHWM to the current RSS (Linux ≥ 4.0, clear_refs 5).
func resetPeakRSS(tb testing.TB) {
	if err := os.WriteFile("/proc/self/clear_refs", []byte("5"), 0); err != nil {
		tb.Logf("cannot reset VmHWM (peak includes earlier work): %v", err)
	}
}

// readProcStatus returns a "kB" field of /proc/self/status in MiB.
func readProcStatus(field string) (float64, error) {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0, fmt.Errorf("read memory status: %w", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		name, rest, ok := strings.Cut(sc.Text(), ":")
		if !ok || name != field {
			continue
		}
		kb, err := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 64)
		if err != nil {
			return 0, fmt.Errorf("parse %s %q: %w", field, rest, err)
		}
		return kb / 1024, nil
	}
	if err := sc.Err(); err != nil {
		return 0, fmt.Errorf("read memory status: %w", err)
	}
	return 0, fmt.Errorf("no %s in /proc/self/status", field)
}

// pingSize is the message of the ping-pong benchmarks: small enough that one
// round trip is one packet each way.
const pingSize = 64

// benchmarkPingPong is the latency counterpart of benchmarkBulk: one op is
// one round trip of pingSize bytes on one stream (the client writes, the
// server reads the whole message and writes it back, the client reads the
// echo), as bench/internal/peer.PingClient does across two processes.
// Besides ns/op (the mean) it reports the median and 99th percentile round
// trip, and how many packets and datapath syscalls one round trip costs
// (both sides together; the floor is 2 packets and, with a blocking
// netpoller read per side, 2 sends and 4 receives).
func benchmarkPingPong(b *testing.B, p *pair) {
	ctx, cancel := context.WithTimeout(context.Background(), benchDeadline)
	defer cancel()
	s, err := p.clientConn.OpenStream()
	if err != nil {
		b.Fatalf("open stream: %v", err)
	}
	msg := randomData(3, pingSize)
	echo := make([]byte, pingSize)
	roundTrip := func() {
		if _, err := s.WriteContext(ctx, msg); err != nil {
			b.Fatalf("write: %v", err)
		}
		for n := 0; n < pingSize; {
			m, err := s.ReadContext(ctx, echo[n:])
			if err != nil {
				b.Fatalf("read echo: %v", err)
			}
			n += m
		}
	}
	if _, err := s.WriteContext(ctx, msg); err != nil {
		b.Fatalf("first write: %v", err)
	}
	rs, err := p.serverConn.AcceptStream(ctx)
	if err != nil {
		b.Fatalf("accept stream: %v", err)
	}
	serverDone := make(chan error, 1)
	go func() {
		buf := make([]byte, pingSize)
		for {
			if _, err := io.ReadFull(readerFunc(func(q []byte) (int, error) { return rs.ReadContext(ctx, q) }), buf); err != nil {
				if errors.Is(err, io.EOF) {
					err = nil
				}
				serverDone <- err
				return
			}
			if _, err := rs.WriteContext(ctx, buf); err != nil {
				serverDone <- err
				return
			}
		}
	}()
	// The first message is still unanswered: read its echo, then warm up.
	for n := 0; n < pingSize; {
		m, err := s.ReadContext(ctx, echo[n:])
		if err != nil {
			b.Fatalf("read first echo: %v", err)
		}
		n += m
	}
	for range 200 {
		roundTrip()
	}

	c0, s0 := p.clientConn.Stats(), p.serverConn.Stats()
	l0 := linkSyscalls(p)
	rtts := make([]time.Duration, b.N)
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		t0 := time.Now()
		roundTrip()
		rtts[i] = time.Since(t0)
	}
	b.StopTimer()
	c1, s1 := p.clientConn.Stats(), p.serverConn.Stats()
	l1 := linkSyscalls(p)
	if !bytes.Equal(echo, msg) {
		b.Fatal("echo differs")
	}
	if err := s.Close(); err != nil {
		b.Fatalf("close stream: %v", err)
	}
	if err := <-serverDone; err != nil {
		b.Fatalf("server: %v", err)
	}

	reportRTTs(b, rtts)
	n := float64(b.N)
	b.ReportMetric(float64(c1.PacketsSent-c0.PacketsSent+s1.PacketsSent-s0.PacketsSent)/n, "pkts/rt")
	if l0.ok {
		b.ReportMetric(float64(l1.out-l0.out)/n, "sends/rt")
		b.ReportMetric(float64(l1.in-l0.in)/n, "recvs/rt")
	}
}

type readerFunc func([]byte) (int, error)

func (f readerFunc) Read(p []byte) (int, error) { return f(p) }

// linkCounts are both endpoints' datapath syscall counters (udplink only).
type linkCounts struct {
	in, out uint64
	ok      bool
}

func linkSyscalls(p *pair) linkCounts {
	var c linkCounts
	for _, e := range []*Endpoint{p.client, p.server} {
		ul, ok := e.Link().(*udplink.Link)
		if !ok {
			return linkCounts{}
		}
		st := ul.Stats()
		c.in += st.SyscallsIn
		c.out += st.SyscallsOut
	}
	c.ok = true
	return c
}

// BenchmarkPingPongUDP is the round-trip latency of 64-byte messages on one
// stream between two endpoints over loopback UDP sockets. Run it with -cpu 1
// as well: with one P every goroutine handoff on the path is serialised, as
// in a pinned process.
func BenchmarkPingPongUDP(b *testing.B) {
	benchmarkPingPong(b, newUDPBenchPair(b))
}

// BenchmarkPingPongMem is BenchmarkPingPongUDP over an unimpaired memlink
// pair: the protocol's and the scheduler's share of a round trip.
func BenchmarkPingPongMem(b *testing.B) {
	benchmarkPingPong(b, newMemBenchPair(b))
}

// BenchmarkPingPongRawUDP is the floor BenchmarkPingPongUDP is compared
// with: the same 64-byte ping-pong between two plain net.UDPConn sockets over
// loopback (blocking reads through the netpoller), no protocol.
func BenchmarkPingPongRawUDP(b *testing.B) {
	srv, err := net.ListenUDP("udp4", net.UDPAddrFromAddrPort(benchLoopback))
	if err != nil {
		b.Fatal(err)
	}
	defer srv.Close()
	cli, err := net.DialUDP("udp4", nil, srv.LocalAddr().(*net.UDPAddr))
	if err != nil {
		b.Fatal(err)
	}
	defer cli.Close()
	go func() {
		buf := make([]byte, pingSize+1)
		for {
			n, from, err := srv.ReadFromUDPAddrPort(buf)
			if err != nil {
				return
			}
			if _, err := srv.WriteToUDPAddrPort(buf[:n], from); err != nil {
				return
			}
		}
	}()
	msg := randomData(3, pingSize)
	echo := make([]byte, pingSize+1)
	roundTrip := func() {
		if _, err := cli.Write(msg); err != nil {
			b.Fatalf("write: %v", err)
		}
		if n, err := cli.Read(echo); err != nil || n != pingSize {
			b.Fatalf("read echo: %d bytes, %v", n, err)
		}
	}
	for range 200 {
		roundTrip()
	}
	rtts := make([]time.Duration, b.N)
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		t0 := time.Now()
		roundTrip()
		rtts[i] = time.Since(t0)
	}
	b.StopTimer()
	reportRTTs(b, rtts)
}

// reportRTTs reports the median and 99th percentile of rtts in µs.
func reportRTTs(b *testing.B, rtts []time.Duration) {
	slices.Sort(rtts)
	q := func(f float64) float64 { return float64(rtts[int(f*float64(len(rtts)-1))]) / float64(time.Microsecond) }
	b.ReportMetric(q(0.5), "p50-µs")
	b.ReportMetric(q(0.99), "p99-µs")
}
