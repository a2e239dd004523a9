package e2e

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/netip"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/flightline/flightline/bpf"
	"github.com/flightline/flightline/testnet"
	"github.com/flightline/flightline/transport"
	"github.com/flightline/flightline/xdp"
	"github.com/stretchr/testify/require"
)

// MiB and GiB keep sizes readable.
const (
	MiB = 1 << 20
	GiB = 1 << 30
)

// quick reports whether the reduced sizes apply (-short or
// FLIGHTLINE_E2E_QUICK=1).
func quick() bool { return testing.Short() || os.Getenv("FLIGHTLINE_E2E_QUICK") == "1" }

// sized picks a transfer size: full normally, quickSize under quick(), and
// raceSize under -race, where the detector slows the data path several
// times over and the whole package must stay under a minute.
func sized(full, quickSize, raceSize int64) int64 {
	switch {
	case raceEnabled:
		return raceSize
	case quick():
		return quickSize
	}
	return full
}

// kind is how one side of a connection moves packets.
type kind int

const (
	kindUDP        kind = iota // transport.Listen with Datapath "udp"
	kindXDPNative              // xdp.Listen with bpf.ModeNative, then transport.NewEndpoint
	kindXDPGeneric             // xdp.Listen with bpf.ModeGeneric, then transport.NewEndpoint
)

// wantDatapath is what Stats().Datapath must say for a side of this kind.
func (k kind) wantDatapath() string {
	if k == kindUDP {
		return "udp"
	}
	return "xdp"
}

// datapath is one row of the datapath table: the client runs on host A (it
// dials and sends), the server on host B.
type datapath struct {
	name           string
	client, server kind
}

// datapaths is the table every transfer test runs over. transport.Config
// cannot choose the XDP attach mode, so the native and generic rows build the
// xdp.Link themselves and hand it to transport.NewEndpoint.
var datapaths = []datapath{
	{"udp-udp", kindUDP, kindUDP},
	{"xdpnative-xdpnative", kindXDPNative, kindXDPNative},
	{"xdpgeneric-xdpgeneric", kindXDPGeneric, kindXDPGeneric},
	{"xdp-udp", kindXDPNative, kindUDP},
}

// openEndpoint opens an endpoint of kind k on h, inside h's namespace, on an
// ephemeral port. The endpoint is closed at cleanup.
func openEndpoint(t testing.TB, h *testnet.Host, k kind, cfg *transport.Config) *transport.Endpoint {
	t.Helper()
	ap := netip.AddrPortFrom(h.Addr, 0)
	var ep *transport.Endpoint
	err := h.Run(func() error {
		var err error
		switch k {
		case kindUDP:
			c := *cfg
			c.Datapath = "udp"
			ep, err = transport.Listen(ap.String(), &c)
			return err
		case kindXDPNative, kindXDPGeneric:
			mode := bpf.ModeNative
			if k == kindXDPGeneric {
				mode = bpf.ModeGeneric
			}
			l, err := xdp.Listen(xdp.Config{Interface: h.Ifname, Addr: ap, Mode: mode})
			if err != nil {
				return fmt.Errorf("xdp listen (mode %v): %w", mode, err)
			}
			ep, err = transport.NewEndpoint(l, cfg, true)
			if err != nil {
				l.Close()
			}
			return err
		}
		return fmt.Errorf("unknown kind %d", k)
	})
	require.NoError(t, err, "open endpoint on %s", h.NS)
	t.Cleanup(func() { ep.Close() })
	return ep
}

// pair is a connected client (on A) and server (on B).
type pair struct {
	client, server *transport.Endpoint
	cc, sc         *transport.Conn
}

// newKey returns a fresh identity.
func newKey(t testing.TB) transport.PrivateKey {
	k, err := transport.GenerateKey()
	require.NoError(t, err)
	return k
}

// baseConfig is the config of both sides: invariant checker off (it costs
// throughput; FlightUnderflows and FlightSize are checked at the end instead).
func baseConfig(t testing.TB) *transport.Config {
	return &transport.Config{PrivateKey: newKey(t), Logf: t.Logf}
}

// lossyMinRTO is the retransmission-timeout floor of tests with loss. A veth
// hop has an RTT of ~50 µs, so the 200 ms default floor turns every RTO
// into a 4000-RTT stall: at 5 % loss each way they dominate the run
// (measured: 41 Mbit/s, 155 RTOs in 52 s for 256 MiB over udp).
const lossyMinRTO = 20 * time.Millisecond

// lossyConfig is baseConfig with MinRTO = lossyMinRTO.
func lossyConfig(t testing.TB) *transport.Config {
	c := baseConfig(t)
	c.MinRTO = lossyMinRTO
	return c
}

// connect opens endpoints of dp's kinds on n and connects them.
func connect(t testing.TB, n *testnet.Network, dp datapath, ccfg, scfg *transport.Config) *pair {
	t.Helper()
	if ccfg == nil {
		ccfg = baseConfig(t)
	}
	if scfg == nil {
		scfg = baseConfig(t)
	}
	srv := openEndpoint(t, n.B, dp.server, scfg)
	cli := openEndpoint(t, n.A, dp.client, ccfg)
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	var sc *transport.Conn
	var serr error
	done := make(chan struct{})
	go func() { sc, serr = srv.Accept(ctx); close(done) }()
	cc, err := cli.Dial(ctx, srv.LocalAddr(), srv.PublicKey())
	require.NoError(t, err, "dial %v", srv.LocalAddr())
	<-done
	require.NoError(t, serr, "accept")
	require.Equal(t, dp.client.wantDatapath(), cc.Stats().Datapath, "client datapath")
	require.Equal(t, dp.server.wantDatapath(), sc.Stats().Datapath, "server datapath")
	return &pair{client: cli, server: srv, cc: cc, sc: sc}
}

// prng is a fast, seeded byte source (PCG, 8 bytes per step).
type prng struct{ r *rand.Rand }

func newPRNG(seed uint64) *prng {
	return &prng{rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))}
}

// fill fills p (len a multiple of 8) with the next bytes of the stream.
func (g *prng) fill(p []byte) {
	for i := 0; i+8 <= len(p); i += 8 {
		v := g.r.Uint64()
		p[i], p[i+1], p[i+2], p[i+3] = byte(v), byte(v>>8), byte(v>>16), byte(v>>24)
		p[i+4], p[i+5], p[i+6], p[i+7] = byte(v>>32), byte(v>>40), byte(v>>48), byte(v>>56)
	}
}

// result is what one transfer measured.
type result struct {
	bytes   int64
	elapsed time.Duration
}

func (r result) goodputMbit() float64 { return float64(r.bytes) * 8 / r.elapsed.Seconds() / 1e6 }

func (r result) String() string {
	return fmt.Sprintf("%d MiB in %v = %.0f Mbit/s", r.bytes/MiB, r.elapsed.Round(time.Millisecond), r.goodputMbit())
}

// transfer sends size bytes of seeded pseudo-random data on each of streams
// new client streams and checks that the server receives every stream
// byte-identical: the SHA-256 and length of what each receiver read must equal
// those of what its sender wrote. It is bounded by timeout.
func transfer(t testing.TB, p *pair, streams int, size int64, seed uint64, timeout time.Duration) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	type digest struct {
		n   int64
		sum [32]byte
	}
	var mu sync.Mutex
	sent := map[uint64]digest{}
	recv := map[uint64]digest{}
	errc := make(chan error, 2*streams)
	start := time.Now()
	for i := range streams {
		s, err := p.cc.OpenStream()
		require.NoError(t, err)
		go func() {
			h := sha256.New()
			g := newPRNG(seed + uint64(i))
			buf := make([]byte, 64<<10)
			var n int64
			for n < size {
				chunk := buf[:min(int64(len(buf)), size-n)]
				g.fill(chunk)
				h.Write(chunk)
				if _, err := s.WriteContext(ctx, chunk); err != nil {
					errc <- fmt.Errorf("write stream %d at %d: %w", s.ID(), n, err)
					return
				}
				n += int64(len(chunk))
			}
			if err := s.Close(); err != nil {
				errc <- fmt.Errorf("close stream %d: %w", s.ID(), err)
				return
			}
			mu.Lock()
			sent[s.ID()] = digest{n, [32]byte(h.Sum(nil))}
			mu.Unlock()
			errc <- nil
		}()
	}
	for range streams {
		rs, err := p.sc.AcceptStream(ctx)
		require.NoError(t, err, "accept stream")
		go func() {
			h := sha256.New()
			buf := make([]byte, 64<<10)
			var n int64
			for {
				k, err := rs.ReadContext(ctx, buf)
				h.Write(buf[:k])
				n += int64(k)
				if errors.Is(err, io.EOF) {
					break
				}
				if err != nil {
					errc <- fmt.Errorf("read stream %d at %d: %w", rs.ID(), n, err)
					return
				}
			}
			mu.Lock()
			recv[rs.ID()] = digest{n, [32]byte(h.Sum(nil))}
			mu.Unlock()
			errc <- nil
		}()
	}
	for range 2 * streams {
		require.NoError(t, <-errc)
	}
	res := result{bytes: int64(streams) * size, elapsed: time.Since(start)}
	require.Len(t, recv, streams)
	for id, w := range sent {
		g, ok := recv[id]
		require.True(t, ok, "stream %d not received", id)
		require.Equal(t, w.n, g.n, "stream %d length", id)
		require.Equal(t, w.sum, g.sum, "stream %d SHA-256 differs", id)
	}
	return res
}

// eventually polls cond every millisecond until it holds or d passes.
func eventually(t testing.TB, d time.Duration, cond func() bool, msg string, args ...any) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf(msg, args...)
		}
		time.Sleep(time.Millisecond)
	}
}

// requireDrained checks the flight invariants at the end of a test: no
// underflow ever, and flight size back to exactly zero on both sides.
func requireDrained(t testing.TB, p *pair) {
	t.Helper()
	for _, c := range []*transport.Conn{p.cc, p.sc} {
		eventually(t, 10*time.Second, func() bool { return c.Stats().FlightSize == 0 },
			"flight size did not return to 0 (is %d)", c.Stats().FlightSize)
		require.Zero(t, c.Stats().FlightUnderflows, "flight underflows")
	}
}

// logStats logs the sender's connection counters and the network's.
func logStats(t testing.TB, what string, p *pair, n *testnet.Network, r result) {
	t.Helper()
	s := p.cc.Stats()
	t.Logf("%s: %v; client %s srtt=%v minrtt=%v cwnd=%d sent=%d lost=%d retx=%d tlp=%d rto=%d abandoned=%d dupdrop=%d senderr=%d",
		what, r, s.Datapath, s.SmoothedRTT.Round(time.Microsecond), s.MinRTT.Round(time.Microsecond),
		s.CongestionWindow, s.PacketsSent, s.PacketsLost, s.PacketsRetransmitted, s.TailLossProbes,
		s.RTOs, s.PacketsAbandoned, s.DroppedDuplicate, s.SendErrors)
	ss := p.sc.Stats()
	t.Logf("%s: server %s recv=%d dupdrop=%d undecryptable=%d; net A->B %+v; B->A %+v",
		what, ss.Datapath, ss.PacketsReceived, ss.DroppedDuplicate, ss.DroppedUndecryptable,
		n.Stats().AtoB, n.Stats().BtoA)
}
