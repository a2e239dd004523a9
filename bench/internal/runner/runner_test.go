package runner

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"os"
	"testing"
	"time"

	"github.com/flightline/flightline/bench/internal/peer"
	"github.com/flightline/flightline/testnet"
	"github.com/stretchr/testify/require"
)

func TestMain(m *testing.M) {
	if IsChild() {
		ChildMain()
	}
	os.Exit(m.Run())
}

// plainTCP is the smallest real peer: one TCP connection per bulk stream.
type plainTCP struct{ corrupt bool }

func (p plainTCP) Serve(ctx context.Context, s *peer.Spec, ready func()) (peer.Result, error) {
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", s.Server.String())
	if err != nil {
		return peer.Result{}, err
	}
	defer ln.Close()
	context.AfterFunc(ctx, func() { ln.Close() })
	ready()
	return peer.BulkServer(ctx, s, func(ctx context.Context) (io.ReadWriter, error) { return ln.Accept() }, nil)
}

func (p plainTCP) Run(ctx context.Context, s *peer.Spec) (peer.Result, error) {
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: s.Client.AsSlice()}}
	var conns []net.Conn
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	return peer.BulkClient(ctx, s, func(ctx context.Context, i int) (io.ReadWriter, error) {
		c, err := d.DialContext(ctx, "tcp", s.Server.String())
		if err != nil {
			return nil, err
		}
		conns = append(conns, c)
		context.AfterFunc(ctx, func() { c.Close() }) // unblocks writers at the deadline
		if p.corrupt {
			return corrupter{c}, nil
		}
		return c, nil
	}, nil, 64<<10)
}

// corrupter flips one byte of every write after the header.
type corrupter struct{ net.Conn }

func (c corrupter) Write(b []byte) (int, error) {
	if len(b) > 16 {
		b = bytes.Clone(b)
		b[len(b)/2] ^= 1
	}
	return c.Conn.Write(b)
}

func init() {
	peer.Register("runner-test-tcp", plainTCP{})
	peer.Register("runner-test-corrupt", plainTCP{corrupt: true})
}

func spec(name string) peer.Spec {
	s := peer.Spec{Peer: name, Scenario: peer.Bulk, Bytes: 8 << 20, Streams: 3, Seed: 7,
		Deadline: time.Now().Add(20 * time.Second)}
	s.Server = netipAddrPort(s.Client, 7000) // address filled in by Run
	return s
}

func TestRunBulkOverVeth(t *testing.T) {
	n := testnet.New(t, testnet.Config{})
	for _, o := range []Options{Unpinned(), {ServerCPU: 1, ClientCPU: 0}} {
		c, s, err := Run(context.Background(), n, spec("runner-test-tcp"), o)
		require.NoError(t, err)
		require.EqualValues(t, 8<<20, c.Bytes)
		require.EqualValues(t, 8<<20, s.Bytes)
		require.Greater(t, c.Phase.Seconds(), 0.0)
		require.Greater(t, c.Phase.ProcessSec(), 0.0)
		require.LessOrEqual(t, s.Phase.StartNS, c.Phase.EndNS, "one clock for both processes")
	}
}

func TestRunReportsCorruption(t *testing.T) {
	n := testnet.New(t, testnet.Config{})
	_, s, err := Run(context.Background(), n, spec("runner-test-corrupt"), Unpinned())
	require.Error(t, err)
	require.Contains(t, s.Error, "differs")
}

func TestRunUnknownPeerAndDeadline(t *testing.T) {
	n := testnet.New(t, testnet.Config{})
	_, _, err := Run(context.Background(), n, spec("no-such-peer"), Unpinned())
	require.ErrorContains(t, err, "unknown peer")

	s := spec("runner-test-tcp")
	s.Bytes = 64 << 30 // cannot finish
	s.Deadline = time.Now().Add(1500 * time.Millisecond)
	start := time.Now()
	_, _, err = Run(context.Background(), n, s, Unpinned())
	require.Error(t, err)
	require.Less(t, time.Since(start), s.Deadline.Sub(start)+grace+2*time.Second)
	require.False(t, errors.Is(err, nil))
}

// TestRunTellsHarnessFromPeer: a spec the harness cannot run is a
// *HarnessError; a peer that fails in its child is not.
func TestRunTellsHarnessFromPeer(t *testing.T) {
	n := testnet.New(t, testnet.Config{})
	var he *HarnessError

	bad := spec("runner-test-tcp")
	bad.Streams = 0
	_, _, err := Run(context.Background(), n, bad, Unpinned())
	require.ErrorAs(t, err, &he)

	_, _, err = Run(context.Background(), n, spec("runner-test-corrupt"), Unpinned())
	require.Error(t, err)
	require.False(t, errors.As(err, &he), "corruption is the peer's failure: %v", err)
}

func TestSideFile(t *testing.T) {
	require.Equal(t, "out/run1.server.cpu.pprof", sideFile("out/run1.cpu.pprof", "server"))
	require.Equal(t, "run.client", sideFile("run", "client"))
	require.Equal(t, "", sideFile("", "client"))
}
