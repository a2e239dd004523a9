// Package peer is the contract between the benchmark orchestrator and the
// transports it compares. A peer (kernel TCP, quic-go, kcp-go, a raw blast,
// flightline on one datapath) implements both sides of every scenario it
// supports; the orchestrator runs each side in its own process inside a
// testnet namespace (the server on host B, the client on host A), hands both
// the same Spec, and combines the two Results into one record.
//
// Why separate processes: pinning "sender and receiver on different CPUs"
// then pins everything each side runs (transport goroutines included, not
// only the application's), CPU time is accounted per side, and a whole
// process sits in one network namespace, so libraries that open sockets on
// their own goroutines (quic-go, kcp-go) cannot open one in the wrong netns.
package peer

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"sync"
	"time"
)

// Scenario names what one run measures.
type Scenario string

const (
	// Bulk: the client sends Spec.Bytes in total, split evenly over
	// Spec.Streams streams (connections for peers without streams); the
	// server verifies every byte against Pattern and, when all streams are
	// complete, acknowledges; the client's measured phase runs from its first
	// write (handshake and stream setup excluded) to that acknowledgement.
	Bulk Scenario = "bulk"
	// Ping: the client sends Spec.MessageSize bytes, the server echoes them,
	// Spec.Messages times after Spec.Warmup unrecorded round trips; the client
	// records every round-trip time.
	Ping Scenario = "ping"
	// Scale: the client opens Spec.Conns connections to the server (with
	// Spec.Concurrency handshakes in flight), checks each with one small
	// echo, and holds them idle; both sides report memory.
	Scale Scenario = "scale"
)

// ErrUnsupported is returned by a side that does not implement a scenario;
// the report shows "n/a" for it rather than a failure.
var ErrUnsupported = errors.New("scenario not supported by this peer")

// Spec is everything both sides of one run need. The orchestrator builds it,
// passes it to both processes as JSON, and sets Side and the profile paths
// per process.
type Spec struct {
	Peer     string   `json:"peer"`
	Scenario Scenario `json:"scenario"`
	Side     Side     `json:"side"`

	// Server is where the server listens (host B's address and a port the
	// orchestrator chose); Client is host A's address, which the client
	// binds to. ServerIfname/ClientIfname are the hosts' veth ends (AF_XDP
	// peers attach there).
	Server       netip.AddrPort `json:"server"`
	Client       netip.Addr     `json:"client"`
	ServerIfname string         `json:"server_ifname"`
	ClientIfname string         `json:"client_ifname"`

	// Bulk.
	Bytes   int64 `json:"bytes,omitempty"`   // total payload bytes over all streams
	Streams int   `json:"streams,omitempty"` // >= 1

	// Ping.
	Messages    int `json:"messages,omitempty"`     // recorded round trips
	Warmup      int `json:"warmup,omitempty"`       // unrecorded round trips first
	MessageSize int `json:"message_size,omitempty"` // bytes each way

	// Scale.
	Conns       int `json:"conns,omitempty"`
	Concurrency int `json:"concurrency,omitempty"` // handshakes in flight

	// Seed selects the payload pattern (see Pattern); both sides use it.
	Seed uint64 `json:"seed"`
	// Keys is opaque per-peer key material the orchestrator generated for
	// both sides (flightline: static keys), so no side has to publish
	// anything at run time.
	Keys map[string]string `json:"keys,omitempty"`
	// Deadline bounds the whole side, setup included. Sides must return (with
	// an error) by then; the orchestrator kills a process that does not.
	Deadline time.Time `json:"deadline"`

	// CPUProfile and MemProfile, when set, are where this side writes a
	// pprof CPU profile of its measured phase and a heap profile at its end.
	CPUProfile string `json:"cpu_profile,omitempty"`
	MemProfile string `json:"mem_profile,omitempty"`
}

// Side is which process a Spec is for.
type Side string

const (
	ServerSide Side = "server"
	ClientSide Side = "client"
)

// Validate reports the first thing wrong with s for its scenario.
func (s *Spec) Validate() error {
	if s.Peer == "" {
		return errors.New("spec: no peer")
	}
	if !s.Server.IsValid() || s.Server.Port() == 0 {
		return fmt.Errorf("spec: server address %v is not addr:port", s.Server)
	}
	if !s.Client.IsValid() {
		return errors.New("spec: no client address")
	}
	if s.Deadline.IsZero() {
		return errors.New("spec: no deadline")
	}
	switch s.Scenario {
	case Bulk:
		if s.Streams < 1 || s.Streams > 256 {
			return fmt.Errorf("spec: %d streams outside 1..256", s.Streams)
		}
		if s.Bytes < int64(s.Streams) {
			return fmt.Errorf("spec: %d bytes for %d streams", s.Bytes, s.Streams)
		}
	case Ping:
		if s.Messages < 1 || s.Warmup < 0 {
			return fmt.Errorf("spec: %d messages, %d warmup", s.Messages, s.Warmup)
		}
		if s.MessageSize < 1 || s.MessageSize > 1200 {
			return fmt.Errorf("spec: message size %d outside 1..1200", s.MessageSize)
		}
	case Scale:
		if s.Conns < 1 || s.Concurrency < 1 {
			return fmt.Errorf("spec: %d connections, concurrency %d", s.Conns, s.Concurrency)
		}
	default:
		return fmt.Errorf("spec: unknown scenario %q", s.Scenario)
	}
	return nil
}

// StreamBytes is how many bytes stream i (0-based) carries in a Bulk run:
// Bytes split evenly, the remainder on the first streams.
func (s *Spec) StreamBytes(i int) int64 {
	n := s.Bytes / int64(s.Streams)
	if int64(i) < s.Bytes%int64(s.Streams) {
		n++
	}
	return n
}

// Result is what one side reports. Fields a scenario does not use stay zero.
type Result struct {
	Side Side `json:"side"`
	// Phase is the measured phase (see Scenario); Meter fills it.
	Phase Phase `json:"phase"`

	// Bulk: payload bytes this side sent (client) or received and verified
	// (server). Datagrams: for blasts, datagrams sent and received (the
	// server's Bytes then counts payload of datagrams that arrived intact).
	Bytes     int64 `json:"bytes,omitempty"`
	Datagrams int64 `json:"datagrams,omitempty"`

	// Ping: round-trip times in nanoseconds, in order.
	RTTs []int64 `json:"rtts_ns,omitempty"`

	// Scale: connections established and checked, the time from the first
	// handshake to the last one finishing, and this process's memory before
	// the first and after the last connection (all idle, after a GC).
	Conns          int           `json:"conns,omitempty"`
	HandshakeTime  time.Duration `json:"handshake_ns,omitempty"`
	RSSBefore      int64         `json:"rss_before,omitempty"`
	RSSAfter       int64         `json:"rss_after,omitempty"`
	HeapBefore     int64         `json:"heap_before,omitempty"`
	HeapAfter      int64         `json:"heap_after,omitempty"`
	GoroutinesIdle int           `json:"goroutines_idle,omitempty"`

	// CC is the sender's congestion-control time series (flightline bulk
	// clients: one sample every 50 ms of the transfer).
	CC []CCSample `json:"cc,omitempty"`

	// Notes are peer-specific counters worth a line in the report
	// (retransmissions, losses, datapath in use, RTT...).
	Notes map[string]float64 `json:"notes,omitempty"`
	// Info is peer-specific text (e.g. "datapath=xdp gso=true").
	Info string `json:"info,omitempty"`
	// Error is set by the process wrapper when the side failed.
	Error string `json:"error,omitempty"`
}

// CCSample is one point of a sender's congestion-control time series.
type CCSample struct {
	T          time.Duration `json:"t_ns"`            // since the sampling started
	Delivered  uint64        `json:"delivered"`       // bytes acknowledged so far
	PacingRate float64       `json:"pacing_Bps"`      // bytes/s
	Bandwidth  float64       `json:"bw_Bps"`          // the controller's bandwidth estimate (BBR max_bw), bytes/s
	Cwnd       int64         `json:"cwnd"`            // bytes
	Flight     int64         `json:"flight"`          // bytes
	SRTT       time.Duration `json:"srtt_ns"`         // smoothed RTT
	State      string        `json:"state,omitempty"` // controller state (BBR)
}

// Peer implements both sides of the scenarios it supports. Both methods run
// in their own process, already inside the right network namespace and
// pinned if asked; they must honour ctx (cancelled at Spec.Deadline) and
// return ErrUnsupported for a scenario they do not implement.
type Peer interface {
	// Serve listens on s.Server, calls ready exactly once when the client
	// may connect, serves one run of s.Scenario and returns.
	Serve(ctx context.Context, s *Spec, ready func()) (Result, error)
	// Run connects to s.Server and drives one run of s.Scenario.
	Run(ctx context.Context, s *Spec) (Result, error)
}

var (
	registryMu sync.Mutex
	registry   = map[string]Peer{}
)

// Register makes p available under name. Peers register from init; a
// duplicate name is a programming error and panics.
func Register(name string, p Peer) {
	registryMu.Lock()
	defer registryMu.Unlock()
	if _, dup := registry[name]; dup {
		panic("peer: duplicate registration of " + name)
	}
	registry[name] = p
}

// Lookup returns the peer registered under name.
func Lookup(name string) (Peer, error) {
	registryMu.Lock()
	defer registryMu.Unlock()
	p, ok := registry[name]
	if !ok {
		return nil, fmt.Errorf("unknown peer %q (registered: %v)", name, namesLocked())
	}
	return p, nil
}

// Names lists the registered peers, sorted.
func Names() []string {
	registryMu.Lock()
	defer registryMu.Unlock()
	return namesLocked()
}

func namesLocked() []string {
	names := make([]string, 0, len(registry))
	for n := range registry {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}
