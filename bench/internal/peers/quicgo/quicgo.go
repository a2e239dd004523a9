// Package quicgo is the quic-go peer: github.com/quic-go/quic-go with its
// default configuration (what a user picking it would get), TLS 1.3 with a
// pinned ECDSA key (see tls.go), over one UDP socket per side.
//
// Bulk uses one connection with Spec.Streams bidirectional streams, Ping one
// stream, Scale one connection per Spec.Conns from one client socket, each
// checked with one echo on a stream.
package quicgo

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/flightline/flightline/bench/internal/peer"
	"github.com/quic-go/quic-go"
)

// Name is the peer's registered name.
const Name = "quic-go"

func init() { peer.Register(Name, Peer{}) }

// chunk is the size of each bulk write.
const chunk = 256 << 10

// config is both sides' quic-go configuration: the defaults, including the
// flow-control windows (512 KiB stream / 768 KiB connection initially,
// auto-tuned up to 6 / 15 MiB), which do not cap a 0.1 ms RTT veth: fixed
// 16 MiB stream / 24 MiB connection windows measured the same (64 MiB on
// one stream, 18 runs each interleaved: medians about 250 MB/s either way,
// run-to-run spread far larger than any difference). The only change is
// MaxIncomingStreams, raised to the run's stream count when that exceeds
// the default of 100: Bulk opens all its streams before sending, which
// would otherwise block at 100. Scale also sets KeepAlivePeriod (10 s, as
// flightline's default keepalive): quic-go has none by default, so with its
// 30 s idle timeout the first of 10k connections could time out while the
// last ones were still handshaking (it happened once, at 288 handshakes/s),
// and an application holding idle connections would turn keepalives on.
func config(s *peer.Spec) *quic.Config {
	c := &quic.Config{}
	if s.Scenario == peer.Bulk && s.Streams > 100 {
		c.MaxIncomingStreams = int64(s.Streams)
	}
	if s.Scenario == peer.Scale {
		c.KeepAlivePeriod = 10 * time.Second
	}
	return c
}

// configInfo describes config for the report.
const configInfo = "quic-go default config (flow-control windows default) tls13 ecdsa-p256 pinned"

// closeLinger bounds how long the server waits for the client to close a
// connection after the run (see endServer): a lost CONNECTION_CLOSE costs
// this much, not the 30-second idle timeout.
const closeLinger = time.Second

// Peer implements peer.Peer over quic-go.
type Peer struct{}

// Serve implements peer.Peer.
func (Peer) Serve(ctx context.Context, s *peer.Spec, ready func()) (peer.Result, error) {
	var run func(context.Context, *peer.Spec, *server, func()) (peer.Result, error)
	switch s.Scenario {
	case peer.Bulk:
		run = serveBulk
	case peer.Ping:
		run = servePing
	case peer.Scale:
		run = serveScale
	default:
		return peer.Result{}, fmt.Errorf("%w: %s", peer.ErrUnsupported, s.Scenario)
	}
	sv, err := listen(ctx, s)
	if err != nil {
		return peer.Result{}, err
	}
	defer sv.close()
	r, err := run(ctx, s, sv, ready)
	r.Info = info(r.Info)
	return r, err
}

// Run implements peer.Peer.
func (Peer) Run(ctx context.Context, s *peer.Spec) (peer.Result, error) {
	var run func(context.Context, *peer.Spec, *client) (peer.Result, error)
	switch s.Scenario {
	case peer.Bulk:
		run = runBulk
	case peer.Ping:
		run = runPing
	case peer.Scale:
		run = runScale
	default:
		return peer.Result{}, fmt.Errorf("%w: %s", peer.ErrUnsupported, s.Scenario)
	}
	cl, err := bind(ctx, s)
	if err != nil {
		return peer.Result{}, err
	}
	defer cl.close()
	r, err := run(ctx, s, cl)
	r.Info = info(r.Info)
	return r, err
}

func info(extra string) string {
	if extra == "" {
		return configInfo
	}
	return configInfo + " " + extra
}

// server is the listening side: one UDP socket on s.Server, its quic-go
// Transport and Listener.
type server struct {
	udp     *net.UDPConn
	tr      *quic.Transport
	ln      *quic.Listener
	stop    func() bool
	closing sync.Once
}

// listen listens on s.Server. When ctx ends everything is torn down:
// Transport.Close destroys every connection, which unblocks every pending
// Accept, stream Read and Write without a registration per connection.
func listen(ctx context.Context, s *peer.Spec) (*server, error) {
	tlsConf, err := serverTLS(s)
	if err != nil {
		return nil, err
	}
	udp, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(s.Server))
	if err != nil {
		return nil, fmt.Errorf("listen udp %v: %w", s.Server, err)
	}
	sv := &server{udp: udp, tr: &quic.Transport{Conn: udp}}
	if sv.ln, err = sv.tr.Listen(tlsConf, config(s)); err != nil {
		sv.tr.Close()
		udp.Close()
		return nil, fmt.Errorf("quic listen %v: %w", s.Server, err)
	}
	sv.stop = context.AfterFunc(ctx, sv.teardown)
	return sv, nil
}

// accept returns the next connection, with ctx's error rather than the
// listener's when ctx ended.
func (sv *server) accept(ctx context.Context) (*quic.Conn, error) {
	c, err := sv.ln.Accept(ctx)
	if err != nil {
		return nil, fmt.Errorf("accept: %w", peer.CtxErr(ctx, err))
	}
	return c, nil
}

func (sv *server) close() {
	sv.stop()
	sv.teardown()
}

func (sv *server) teardown() {
	sv.closing.Do(func() {
		sv.ln.Close()
		sv.tr.Close()
		sv.udp.Close()
	})
}

// client is the dialing side: one UDP socket bound to host A's address
// (quic-go's DialAddr would bind the wildcard), shared by all its
// connections, as one QUIC client endpoint does.
type client struct {
	udp     *net.UDPConn
	tr      *quic.Transport
	tlsConf *tls.Config
	server  *net.UDPAddr
	conf    *quic.Config
	stop    func() bool
	closing sync.Once
}

func bind(ctx context.Context, s *peer.Spec) (*client, error) {
	tlsConf, err := clientTLS(s)
	if err != nil {
		return nil, err
	}
	udp, err := net.ListenUDP("udp", &net.UDPAddr{IP: s.Client.AsSlice()})
	if err != nil {
		return nil, fmt.Errorf("bind udp %v: %w", s.Client, err)
	}
	cl := &client{
		udp:     udp,
		tr:      &quic.Transport{Conn: udp},
		tlsConf: tlsConf,
		server:  net.UDPAddrFromAddrPort(s.Server),
		conf:    config(s),
	}
	cl.stop = context.AfterFunc(ctx, cl.teardown)
	return cl, nil
}

// dial completes a handshake with the server.
func (cl *client) dial(ctx context.Context) (*quic.Conn, error) {
	c, err := cl.tr.Dial(ctx, cl.server, cl.tlsConf, cl.conf)
	if err != nil {
		return nil, fmt.Errorf("dial %v: %w", cl.server, peer.CtxErr(ctx, err))
	}
	return c, nil
}

func (cl *client) close() {
	cl.stop()
	cl.teardown()
}

func (cl *client) teardown() {
	cl.closing.Do(func() {
		cl.tr.Close()
		cl.udp.Close()
	})
}

// closeConn ends the client's connection: cleanly after a run, with an
// error code after a failure so the server stops waiting at once.
func closeConn(c *quic.Conn, err error) {
	if err != nil {
		c.CloseWithError(1, "run failed")
		return
	}
	c.CloseWithError(0, "done")
}

// endServer ends the server's connection. After a failed run it closes at
// once with an error code. After a good one the client has the last word
// (it closes once it has its ack or last echo; closing first would discard
// stream data still in flight), so the server waits for that close, for at
// most closeLinger or until ctx ends, then closes, which is a no-op if the
// client already did.
func endServer(ctx context.Context, c *quic.Conn, err error) {
	if err != nil {
		c.CloseWithError(1, "run failed")
		return
	}
	t := time.NewTimer(closeLinger)
	defer t.Stop()
	select {
	case <-c.Context().Done():
	case <-t.C:
	case <-ctx.Done():
	}
	c.CloseWithError(0, "done")
}

// connNotes are one connection's counters worth a report line, named like
// the other peers': quic-go retransmits the frames of lost packets, so
// packets declared lost stand for retransmissions.
func connNotes(st quic.ConnectionStats) map[string]float64 {
	n := map[string]float64{
		"packets_sent":     float64(st.PacketsSent),
		"packets_received": float64(st.PacketsReceived),
		"lost":             float64(st.PacketsLost),
		"retransmits":      float64(st.PacketsLost),
		"srtt_us":          float64(st.SmoothedRTT) / float64(time.Microsecond),
		"min_rtt_us":       float64(st.MinRTT) / float64(time.Microsecond),
	}
	if st.PacketsSent > 0 {
		n["retransmit_pct"] = 100 * float64(st.PacketsLost) / float64(st.PacketsSent)
	}
	return n
}
