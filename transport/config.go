package transport

import (
	"errors"
	"fmt"
	"time"

	"github.com/flightline/flightline/transport/internal/handshake"
	"github.com/flightline/flightline/transport/link"
)

// Defaults for Config fields left zero. Protocol constants live next to the
// code that uses them; these are implementation tunables.
const (
	DefaultStreamReceiveWindow     = 4 << 20
	DefaultConnectionReceiveWindow = 16 << 20
	DefaultStreamSendBuffer        = 1 << 20
	DefaultMaxStreams              = 256
	DefaultMaxAckDelay             = 2 * time.Millisecond
	DefaultHandshakeTimeout        = 10 * time.Second
	DefaultIdleTimeout             = 30 * time.Second
	DefaultMaxRetransmits          = 10
	DefaultMinRTO                  = 200 * time.Millisecond
	DefaultMaxRTO                  = 60 * time.Second
	DefaultWindowWaitTimeout       = 2 * time.Second
	DefaultHandshakeRate           = 1000
	DefaultMaxMessageSize          = 1200
	DefaultMessageQueue            = 1024
	// DefaultKeyUpdateInterval is Config.KeyUpdateInterval's default:
	// 2^20 packets (about 1.5 GB of 1452-byte packets) per key, 8 times
	// below AES-GCM's 2^23-packet confidentiality limit.
	DefaultKeyUpdateInterval = 1 << 20
	// MaxKeyUpdateInterval bounds Config.KeyUpdateInterval: half the
	// AES-GCM confidentiality limit, so an update still waiting for the
	// previous one's confirmation has 2^22 packets of room.
	MaxKeyUpdateInterval           = 1 << 22
	DefaultMaxConnections          = 16384
	DefaultMaxConnectionsPerSource = 4096
)

// Suite selects the AEAD that protects packets.
type Suite = handshake.Suite

// AEAD suites.
const (
	SuiteAESGCM           = handshake.SuiteAESGCM
	SuiteChaCha20Poly1305 = handshake.SuiteChaCha20Poly1305
)

// Config configures an Endpoint and the connections it makes. The zero value
// is usable for a dialer (an ephemeral identity is generated); a listener
// needs PrivateKey so peers can authenticate it. Every field documents its
// default.
type Config struct {
	// PrivateKey is this endpoint's static X25519 identity. Default: a fresh
	// random key (fine for dialers that need no stable identity).
	PrivateKey PrivateKey
	// AllowedPeers, when non-nil, is the allowlist of initiator static keys a
	// listener accepts. Default: accept any initiator.
	AllowedPeers []PublicKey
	// Suite is the AEAD the dialer proposes. Default: AES-256-GCM.
	Suite Suite

	// Datapath selects how packets move: "udp" (sockets with
	// recvmmsg/sendmmsg, GSO/GRO), "xdp" (AF_XDP kernel bypass; an error
	// naming the cause where it cannot work) or "auto" (default: AF_XDP when
	// the probe says it works on the address's interface, else UDP with one
	// log line saying why).
	Datapath string
	// Interface is the network interface for the xdp datapath. Default: the
	// interface that owns the listen address.
	Interface string
	// XDPMode is how the XDP program attaches for the xdp datapath: "auto"
	// (default: native where the driver supports it), "native" or "generic".
	XDPMode string
	// XDPBusyPoll turns on preferred busy polling for the xdp datapath
	// (xdp.BusyPollPrefer: logged fallback where the kernel refuses it).
	// Default false. See docs/afxdp.md.
	XDPBusyPoll bool

	// MaxPacketSize is the largest UDP payload sent. Default and maximum:
	// link.MaxPacketSize (1452).
	MaxPacketSize int
	// StreamReceiveWindow is the per-stream flow-control window. Default 4 MiB.
	StreamReceiveWindow uint64
	// ConnectionReceiveWindow is the per-connection flow-control window.
	// Default 16 MiB.
	ConnectionReceiveWindow uint64
	// StreamSendBuffer bounds bytes written but not yet packetized per stream;
	// Write blocks beyond it. Default 1 MiB.
	StreamSendBuffer int
	// MaxStreams is how many streams the peer may open concurrently. Default 256.
	MaxStreams int
	// MaxAckDelay is how long an ACK for ack-eliciting packets may be held
	// back. Default 2 ms.
	MaxAckDelay time.Duration

	// HandshakeTimeout bounds Dial. Default 10 s.
	HandshakeTimeout time.Duration
	// IdleTimeout closes a connection that received nothing for this long.
	// Default 30 s.
	IdleTimeout time.Duration
	// KeepAlive sends a PING after this much send silence. Default
	// IdleTimeout/3; negative disables keepalives.
	KeepAlive time.Duration

	// MaxRetransmits is how often one packet's contents are resent before
	// they are abandoned and the owning stream fails. Default 10.
	MaxRetransmits int
	// MinRTO and MaxRTO clamp the retransmission timeout. Defaults 200 ms, 60 s.
	MinRTO, MaxRTO time.Duration
	// WindowWaitTimeout is the least time a stream waits for congestion
	// window space before it is aborted (the connection survives). The
	// effective timeout is max(WindowWaitTimeout, 8×PTO). Default 2 s.
	WindowWaitTimeout time.Duration
	// UpstreamInactivityTimeout aborts a stream fed by ReadFrom when its
	// source produces nothing for this long. Default 0: no limit.
	UpstreamInactivityTimeout time.Duration

	// Congestion selects the controller: "cubic" (default), "bbr"
	// (BBRv3, draft-ietf-ccwg-bbr-06, with a bounded response to random
	// loss; see transport/internal/congestion/bbr.go) or "fixed". Pick
	// "bbr" for WAN, lossy or shared paths: it keeps them full at a low
	// RTT where CUBIC collapses under random loss; CUBIC stays the default
	// because it is faster on clean LAN/data-centre links
	// (docs/performance.md § Congestion control).
	Congestion string
	// FixedRate is the rate in bytes/s of the "fixed" controller.
	// Default 12.5 MB/s (100 Mbit/s).
	FixedRate float64

	// HandshakeRate is how many initiations per second a listener processes
	// before it demands a stateless cookie round trip. Default 1000. Under
	// load, initiations with a valid cookie are further limited per source
	// (SourceHandshakeRate, SourceHandshakeBurst).
	HandshakeRate int
	// MaxMessageSize bounds SendMessage payloads. Default and maximum 1200.
	MaxMessageSize int
	// KeyUpdateInterval is how many packets one key seals before this side
	// initiates a key update (docs/protocol.md §5.3), for either suite.
	// Default DefaultKeyUpdateInterval (2^20), at most
	// MaxKeyUpdateInterval (2^22). Small values are for tests.
	KeyUpdateInterval int

	// MaxConnections bounds the connections peers opened to a listener
	// that it holds at once, including those still waiting for their
	// initiator to prove its address. Beyond it initiations are dropped
	// before any cryptography (EndpointStats.ConnectionsRefused) and the
	// dialer times out. Default 16384 (an idle connection holds tens of
	// KiB). Dialled connections are not counted.
	MaxConnections int
	// MaxConnectionsPerSource bounds those connections per source: one
	// IPv4 address, or one IPv6 /64. Default 4096; raise it when many
	// clients share one address (a large NAT) or one host opens
	// thousands of connections.
	MaxConnectionsPerSource int

	// Logf receives rare operational log lines (fallbacks, drops of note).
	// Default: discard.
	Logf func(format string, args ...any)

	// CheckInvariants verifies flight == Σ tracked bytes after every
	// tracker operation and panics on violation. Tests turn it on.
	CheckInvariants bool

	// testKeyLimits, when set, replaces the AEAD limits (interval,
	// confidentiality, integrity) so tests can reach them.
	testKeyLimits *keyLimits
}

// keyLimits returns the key update thresholds of a connection using suite.
func (c *Config) keyLimits(suite Suite) keyLimits {
	if c.testKeyLimits != nil {
		return *c.testKeyLimits
	}
	return defaultKeyLimits(suite, c.KeyUpdateInterval)
}

func (c *Config) populate() (*Config, error) {
	var cfg Config
	if c != nil {
		cfg = *c
	}
	if cfg.PrivateKey == (PrivateKey{}) {
		k, err := GenerateKey()
		if err != nil {
			return nil, err
		}
		cfg.PrivateKey = k
	}
	if cfg.Suite == 0 {
		cfg.Suite = SuiteAESGCM
	}
	if cfg.Suite != SuiteAESGCM && cfg.Suite != SuiteChaCha20Poly1305 {
		return nil, fmt.Errorf("config: unknown suite %d", cfg.Suite)
	}
	if cfg.Datapath == "" {
		cfg.Datapath = "auto"
	}
	if cfg.Datapath != "auto" && cfg.Datapath != "udp" && cfg.Datapath != "xdp" {
		return nil, fmt.Errorf("config: unknown datapath %q (want auto, udp or xdp)", cfg.Datapath)
	}
	switch cfg.XDPMode {
	case "":
		cfg.XDPMode = "auto"
	case "auto", "native", "generic":
	default:
		return nil, fmt.Errorf("config: unknown XDP mode %q (want auto, native or generic)", cfg.XDPMode)
	}
	if cfg.MaxPacketSize == 0 {
		cfg.MaxPacketSize = link.MaxPacketSize
	}
	if cfg.MaxPacketSize < 256 || cfg.MaxPacketSize > link.MaxPacketSize {
		return nil, fmt.Errorf("config: MaxPacketSize %d outside [256, %d]", cfg.MaxPacketSize, link.MaxPacketSize)
	}
	setDefault(&cfg.StreamReceiveWindow, DefaultStreamReceiveWindow)
	setDefault(&cfg.ConnectionReceiveWindow, DefaultConnectionReceiveWindow)
	setDefault(&cfg.StreamSendBuffer, DefaultStreamSendBuffer)
	setDefault(&cfg.MaxStreams, DefaultMaxStreams)
	setDefault(&cfg.MaxAckDelay, DefaultMaxAckDelay)
	setDefault(&cfg.HandshakeTimeout, DefaultHandshakeTimeout)
	setDefault(&cfg.IdleTimeout, DefaultIdleTimeout)
	if cfg.KeepAlive == 0 {
		cfg.KeepAlive = cfg.IdleTimeout / 3
	}
	setDefault(&cfg.MaxRetransmits, DefaultMaxRetransmits)
	setDefault(&cfg.MinRTO, DefaultMinRTO)
	setDefault(&cfg.MaxRTO, DefaultMaxRTO)
	setDefault(&cfg.WindowWaitTimeout, DefaultWindowWaitTimeout)
	if cfg.Congestion == "" {
		cfg.Congestion = "cubic"
	}
	if cfg.Congestion != "cubic" && cfg.Congestion != "bbr" && cfg.Congestion != "fixed" {
		return nil, fmt.Errorf("config: unknown congestion controller %q (want cubic, bbr or fixed)", cfg.Congestion)
	}
	setDefault(&cfg.FixedRate, 12.5e6)
	setDefault(&cfg.HandshakeRate, DefaultHandshakeRate)
	setDefault(&cfg.MaxMessageSize, DefaultMaxMessageSize)
	setDefault(&cfg.MaxConnections, DefaultMaxConnections)
	setDefault(&cfg.MaxConnectionsPerSource, DefaultMaxConnectionsPerSource)
	if cfg.MaxConnections < 0 || cfg.MaxConnectionsPerSource < 0 || cfg.HandshakeRate < 0 {
		return nil, errors.New("config: negative MaxConnections, MaxConnectionsPerSource or HandshakeRate")
	}
	if cfg.MaxMessageSize > DefaultMaxMessageSize || cfg.MaxMessageSize < 0 {
		return nil, fmt.Errorf("config: MaxMessageSize %d outside [1, %d]", cfg.MaxMessageSize, DefaultMaxMessageSize)
	}
	setDefault(&cfg.KeyUpdateInterval, DefaultKeyUpdateInterval)
	if cfg.KeyUpdateInterval < 1 || cfg.KeyUpdateInterval > MaxKeyUpdateInterval {
		return nil, fmt.Errorf("config: KeyUpdateInterval %d outside [1, %d]", cfg.KeyUpdateInterval, MaxKeyUpdateInterval)
	}
	if cfg.StreamReceiveWindow > cfg.ConnectionReceiveWindow {
		return nil, errors.New("config: StreamReceiveWindow larger than ConnectionReceiveWindow")
	}
	if cfg.MinRTO > cfg.MaxRTO {
		return nil, errors.New("config: MinRTO larger than MaxRTO")
	}
	if cfg.Logf == nil {
		cfg.Logf = func(string, ...any) {}
	}
	return &cfg, nil
}

func setDefault[T comparable](p *T, v T) {
	var zero T
	if *p == zero {
		*p = v
	}
}
