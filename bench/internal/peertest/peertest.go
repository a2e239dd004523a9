// Package peertest is what every peer's smoke tests share: the TestMain hook
// that turns the test binary into a benchmark child, the tiny per-scenario
// specs, and a run helper that bounds and logs one run.
package peertest

import (
	"context"
	"net/netip"
	"os"
	"testing"
	"time"

	"github.com/flightline/flightline/bench/internal/peer"
	"github.com/flightline/flightline/bench/internal/runner"
	"github.com/flightline/flightline/testnet"
	"github.com/stretchr/testify/require"
)

// Main is a peer test package's TestMain: runner.Run re-executes the test
// binary as each side of a run.
func Main(m *testing.M) {
	if runner.IsChild() {
		runner.ChildMain()
	}
	os.Exit(m.Run())
}

// Budget is how long one smoke run may take end to end (both processes
// included); the runs are tiny, so more means something is stuck.
const Budget = 3 * time.Second

// Smoke sizes, small enough to run in CI for every peer.
const (
	BulkBytes   = 2 << 20
	BulkStreams = 2
	Messages    = 50
	Warmup      = 10
	Conns       = 50
)

// Spec is a smoke-sized spec of scenario sc for the peer name, serving on
// port (the address is filled in by runner.Run).
func Spec(name string, sc peer.Scenario, port uint16) peer.Spec {
	s := peer.Spec{Peer: name, Scenario: sc, Seed: 11, Deadline: time.Now().Add(15 * time.Second)}
	s.Server = netip.AddrPortFrom(netip.Addr{}, port)
	switch sc {
	case peer.Bulk:
		s.Bytes, s.Streams = BulkBytes, BulkStreams
	case peer.Ping:
		s.Messages, s.Warmup, s.MessageSize = Messages, Warmup, 64
	case peer.Scale:
		s.Conns, s.Concurrency = Conns, 8
	}
	return s
}

// Run runs s unpinned over n, requires it to succeed within Budget, and logs
// what each side reported.
func Run(t *testing.T, n *testnet.Network, s peer.Spec) (client, server peer.Result) {
	t.Helper()
	start := time.Now()
	c, sv, err := runner.Run(context.Background(), n, s, runner.Unpinned())
	require.NoError(t, err)
	require.Less(t, time.Since(start), Budget)
	t.Logf("%s %s: client %.1f ms, %d bytes, notes %v; server %.1f ms; info %q",
		s.Peer, s.Scenario, c.Phase.Seconds()*1e3, c.Bytes, c.Notes, sv.Phase.Seconds()*1e3, c.Info)
	return c, sv
}
