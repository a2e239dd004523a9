package transport

import (
	"bytes"
	"context"
	"crypto/sha256"
	"io"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/flightline/flightline/transport/link"
	"github.com/flightline/flightline/transport/memlink"
	"github.com/stretchr/testify/require"
)

// testConfig returns a config with the runtime flight checker on.
func testConfig(t testing.TB) *Config {
	t.Helper()
	k, err := GenerateKey()
	require.NoError(t, err)
	return &Config{PrivateKey: k, CheckInvariants: true, Logf: t.Logf}
}

type pair struct {
	server, client         *Endpoint
	serverConn, clientConn *Conn
}

// newPairOver connects two endpoints over the given links.
func newPairOver(t testing.TB, a, b link.Link, scfg, ccfg *Config) *pair {
	t.Helper()
	srv, err := NewEndpoint(a, scfg, true)
	require.NoError(t, err)
	cli, err := NewEndpoint(b, ccfg, false)
	require.NoError(t, err)
	t.Cleanup(func() { cli.Close(); srv.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var sc *Conn
	var serr error
	done := make(chan struct{})
	go func() { sc, serr = srv.Accept(ctx); close(done) }()
	cc, err := cli.Dial(ctx, a.LocalAddr(), srv.PublicKey())
	require.NoError(t, err)
	<-done
	require.NoError(t, serr)
	return &pair{server: srv, client: cli, serverConn: sc, clientConn: cc}
}

func newMemPair(t testing.TB, cfg memlink.Config) (*pair, *memlink.Link, *memlink.Link) {
	a, b := memlink.NewPair(cfg)
	return newPairOver(t, a, b, testConfig(t), testConfig(t)), a, b
}

func randomData(seed uint64, n int) []byte {
	r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	b := make([]byte, n)
	for i := 0; i+8 <= n; i += 8 {
		v := r.Uint64()
		for j := range 8 {
			b[i+j] = byte(v >> (8 * j))
		}
	}
	return b
}

func TestMemSingleStream(t *testing.T) {
	p, _, _ := newMemPair(t, memlink.Config{Seed: 1})
	data := randomData(1, 1<<20)
	s, err := p.clientConn.OpenStream()
	require.NoError(t, err)
	go func() {
		s.Write(data)
		s.Close()
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	rs, err := p.serverConn.AcceptStream(ctx)
	require.NoError(t, err)
	got, err := io.ReadAll(rs)
	require.NoError(t, err)
	require.True(t, bytes.Equal(data, got), "data mismatch: got %d bytes", len(got))
}

// transferStreams sends per-stream random data over n concurrent streams and
// checks every byte arrives intact.
func transferStreams(t *testing.T, p *pair, streams, size int) {
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	want := make(map[uint64][32]byte)
	var mu sync.Mutex
	var wg sync.WaitGroup
	for i := range streams {
		s, err := p.clientConn.OpenStream()
		require.NoError(t, err)
		data := randomData(uint64(i+100), size)
		mu.Lock()
		want[s.ID()] = sha256.Sum256(data)
		mu.Unlock()
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := s.WriteContext(ctx, data); err != nil {
				t.Errorf("write stream %d: %v", s.ID(), err)
			}
			s.Close()
		}()
	}
	got := make(chan error, streams)
	for range streams {
		rs, err := p.serverConn.AcceptStream(ctx)
		require.NoError(t, err)
		go func() {
			h := sha256.New()
			n, err := io.Copy(h, readerCtx{ctx, rs})
			if err != nil {
				got <- err
				return
			}
			var sum [32]byte
			copy(sum[:], h.Sum(nil))
			mu.Lock()
			w := want[rs.ID()]
			mu.Unlock()
			if sum != w || n != int64(size) {
				t.Errorf("stream %d: %d bytes, digest mismatch=%v", rs.ID(), n, sum != w)
			}
			got <- nil
		}()
	}
	for range streams {
		require.NoError(t, <-got)
	}
	wg.Wait()
}

type readerCtx struct {
	ctx context.Context
	s   *Stream
}

func (r readerCtx) Read(p []byte) (int, error) { return r.s.ReadContext(r.ctx, p) }

func TestMemMultiStreamLossy(t *testing.T) {
	imp := memlink.Impairment{Loss: 0.05, Duplicate: 0.02, Reorder: 0.05}
	p, _, _ := newMemPair(t, memlink.Config{Seed: 7, AtoB: imp, BtoA: imp})
	size := 8 << 20
	if testing.Short() {
		size = 1 << 20
	}
	transferStreams(t, p, 8, size)
	st := p.clientConn.Stats()
	t.Logf("client stats: %+v", st)
	require.Zero(t, st.FlightUnderflows)
}
