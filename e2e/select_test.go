package e2e

import (
	"context"
	"fmt"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/flightline/flightline/testnet"
	"github.com/flightline/flightline/transport"
	"github.com/stretchr/testify/require"
)

// logCapture collects Config.Logf lines.
type logCapture struct {
	mu    sync.Mutex
	lines []string
}

func (l *logCapture) logf(format string, args ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.lines = append(l.lines, fmt.Sprintf(format, args...))
}

func (l *logCapture) get() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.lines...)
}

// TestXDPDemoSelection checks datapath selection through the public API:
// "xdp" on a veth works, "xdp" on loopback fails naming the cause, and
// "auto" on loopback falls back to udp with exactly one log line.
func TestXDPDemoSelection(t *testing.T) {
	testnet.RequirePrivileged(t)

	t.Run("xdp-on-veth", func(t *testing.T) {
		n := testnet.New(t, testnet.Config{})
		var srv *transport.Endpoint
		require.NoError(t, n.B.Run(func() (err error) {
			srv, err = transport.Listen(netip.AddrPortFrom(n.B.Addr, 0).String(),
				&transport.Config{PrivateKey: newKey(t), Datapath: "xdp", Logf: t.Logf})
			return err
		}))
		t.Cleanup(func() { srv.Close() })
		require.Equal(t, "xdp", srv.Link().Caps().Datapath)
		cli := openEndpoint(t, n.A, kindUDP, baseConfig(t))
		p := dialPair(t, cli, srv)
		echo(t, p)
		require.Equal(t, "xdp", p.sc.Stats().Datapath)
		require.Equal(t, "udp", p.cc.Stats().Datapath)
	})

	t.Run("xdp-on-loopback", func(t *testing.T) {
		var logs logCapture
		ep, err := transport.Listen("127.0.0.1:0", &transport.Config{Datapath: "xdp", Logf: logs.logf})
		if err == nil {
			ep.Close()
		}
		require.Error(t, err)
		t.Logf("error: %v", err)
		require.ErrorContains(t, err, "loopback", "the error must name the cause")
		require.ErrorContains(t, err, "xdp")
	})

	t.Run("auto-on-loopback", func(t *testing.T) {
		var logs logCapture
		srv, err := transport.Listen("127.0.0.1:0", &transport.Config{PrivateKey: newKey(t), Datapath: "auto", Logf: logs.logf})
		require.NoError(t, err)
		t.Cleanup(func() { srv.Close() })
		require.Equal(t, "udp", srv.Link().Caps().Datapath)
		lines := logs.get()
		require.Len(t, lines, 1, "want exactly one fallback line, got %q", lines)
		t.Logf("fallback line: %s", lines[0])
		require.Contains(t, lines[0], "udp")
		require.Contains(t, lines[0], "loopback", "the line must say why")

		cli, err := transport.Listen("127.0.0.1:0", &transport.Config{Datapath: "udp"})
		require.NoError(t, err)
		t.Cleanup(func() { cli.Close() })
		p := dialPair(t, cli, srv)
		echo(t, p)
		require.Equal(t, "udp", p.sc.Stats().Datapath)
		require.Len(t, logs.get(), 1, "more log lines after the connection: %q", logs.get())
	})
}

// dialPair connects cli to srv.
func dialPair(t *testing.T, cli, srv *transport.Endpoint) *pair {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	acc := make(chan *transport.Conn, 1)
	go func() {
		c, err := srv.Accept(ctx)
		if err != nil {
			t.Errorf("accept: %v", err)
		}
		acc <- c
	}()
	cc, err := cli.Dial(ctx, srv.LocalAddr(), srv.PublicKey())
	require.NoError(t, err)
	sc := <-acc
	require.NotNil(t, sc)
	return &pair{client: cli, server: srv, cc: cc, sc: sc}
}

// echo sends a few bytes on a new stream and reads them back.
func echo(t *testing.T, p *pair) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	go func() {
		s, err := p.sc.AcceptStream(ctx)
		if err != nil {
			return
		}
		buf := make([]byte, 5)
		if _, err := s.ReadContext(ctx, buf); err == nil {
			s.WriteContext(ctx, buf)
		}
		s.Close()
	}()
	s, err := p.cc.OpenStream()
	require.NoError(t, err)
	_, err = s.WriteContext(ctx, []byte("hello"))
	require.NoError(t, err)
	buf := make([]byte, 5)
	_, err = s.ReadContext(ctx, buf)
	require.NoError(t, err)
	require.Equal(t, "hello", string(buf))
}
