package main

import (
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/flightline/flightline/transport"
	"github.com/stretchr/testify/require"
)

// fakeStream is a transfer stream for receiver tests: it yields data, then
// EOF if fin, else blocks until ctx ends or release is closed (then EOF).
type fakeStream struct {
	data    []byte
	fin     bool
	release chan struct{}
	waiting chan struct{} // closed when a read first blocks

	mu                  sync.Mutex
	readCode, writeCode *transport.StreamErrorCode
	written             bytes.Buffer
	closed              bool
	once                sync.Once
}

func newFakeStream(data []byte, fin bool) *fakeStream {
	return &fakeStream{data: data, fin: fin, release: make(chan struct{}), waiting: make(chan struct{})}
}

func (f *fakeStream) ReadContext(ctx context.Context, p []byte) (int, error) {
	f.mu.Lock()
	if len(f.data) > 0 {
		n := copy(p, f.data)
		f.data = f.data[n:]
		f.mu.Unlock()
		return n, nil
	}
	f.mu.Unlock()
	if f.fin {
		return 0, io.EOF
	}
	f.once.Do(func() { close(f.waiting) })
	select {
	case <-ctx.Done():
		return 0, ctx.Err()
	case <-f.release:
		return 0, io.EOF
	}
}

func (f *fakeStream) WriteContext(_ context.Context, p []byte) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.written.Write(p)
}

func (f *fakeStream) CancelRead(code transport.StreamErrorCode) {
	f.mu.Lock()
	f.readCode = &code
	f.mu.Unlock()
}

func (f *fakeStream) CancelWrite(code transport.StreamErrorCode) {
	f.mu.Lock()
	f.writeCode = &code
	f.mu.Unlock()
}

func (f *fakeStream) Close() error {
	f.mu.Lock()
	f.closed = true
	f.mu.Unlock()
	return nil
}

// reset returns the code the stream was reset with, or -1.
func (f *fakeStream) reset() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.readCode == nil || f.writeCode == nil {
		return -1
	}
	return int(*f.writeCode)
}

func transfer(t testing.TB, name string, size int, sent int) []byte {
	return append(mustHeader(t, header{Name: name, Size: uint64(size)}), bytes.Repeat([]byte{'x'}, sent)...)
}

func testKey(t testing.TB) transport.PublicKey {
	k, err := transport.GenerateKey()
	require.NoError(t, err)
	return k.Public()
}

// A stream that sends no complete header within --header-timeout is reset
// (code xferTimeout) exactly then, instead of holding a goroutine until the
// connection ends.
func TestHeaderTimeoutResetsStream(t *testing.T) {
	peer := testKey(t)
	synctest.Test(t, func(t *testing.T) {
		rc := &receiver{maxSize: 1 << 20, headerTimeout: 7 * time.Second}
		for _, data := range [][]byte{nil, transfer(t, "f", 10, 0)[:9]} {
			s := newFakeStream(data, false)
			start := time.Now()
			_, err := rc.serve(context.Background(), s, peer)
			require.ErrorContains(t, err, "no complete header within 7s")
			require.Equal(t, 7*time.Second, time.Since(start))
			require.Equal(t, xferTimeout, s.reset())
		}
		// The timeout covers the header only: a slow body is not cut off.
		s := newFakeStream(transfer(t, "f", 10, 5), false)
		done := make(chan error)
		go func() { _, err := rc.serve(context.Background(), s, peer); done <- err }()
		<-s.waiting
		time.Sleep(time.Minute)
		s.mu.Lock()
		s.data, s.fin = bytes.Repeat([]byte{'x'}, 5), true
		s.mu.Unlock()
		close(s.release)
		require.Error(t, <-done) // released with EOF before fin was seen: short, but not a timeout
		require.NotEqual(t, xferTimeout, s.reset())
	})
}

// Per peer key: at most --max-streams-per-peer transfers at once and at
// most --max-bytes-per-peer announced by the running ones; other peers are
// not affected and slots come back when transfers end.
func TestPerPeerLimits(t *testing.T) {
	rc := &receiver{maxSize: 1 << 20, peers: newPeerLimits(2, 100)}
	k1, k2 := testKey(t), testKey(t)
	ctx := context.Background()
	serve := func(s *fakeStream, k transport.PublicKey) chan error {
		done := make(chan error, 1)
		go func() { _, err := rc.serve(ctx, s, k); done <- err }()
		return done
	}
	complete := func(name string, size int) *fakeStream {
		return newFakeStream(transfer(t, name, size, size), true)
	}

	// k1 holds 60 bytes in a running transfer.
	s1 := newFakeStream(transfer(t, "one", 60, 10), false)
	d1 := serve(s1, k1)
	<-s1.waiting
	s := complete("two", 50)
	require.ErrorContains(t, <-serve(s, k1), "--max-bytes-per-peer")
	require.Equal(t, xferPeerLimit, s.reset())
	s = complete("three", 40)
	require.NoError(t, <-serve(s, k1), "fits in the remaining 40 bytes")
	require.Equal(t, -1, s.reset())

	// A second running transfer fills k1's two stream slots.
	s2 := newFakeStream(transfer(t, "four", 1, 0), false)
	d2 := serve(s2, k1)
	<-s2.waiting
	s = complete("five", 1)
	require.ErrorContains(t, <-serve(s, k1), "--max-streams-per-peer")
	require.Equal(t, xferPeerLimit, s.reset())
	s = complete("other", 90)
	require.NoError(t, <-serve(s, k2), "another peer has its own limits")

	close(s1.release)
	close(s2.release)
	require.Error(t, <-d1)
	require.Error(t, <-d2)
	s = complete("again", 100)
	require.NoError(t, <-serve(s, k1), "slots and bytes come back")
	rc.peers.mu.Lock()
	require.Empty(t, rc.peers.use)
	rc.peers.mu.Unlock()
}

// Names and errors printed by listen escape C1 controls, bidirectional-text
// controls and invalid UTF-8; JSON output carries them as \u escapes.
func TestPeerTextEscaped(t *testing.T) {
	for in, want := range map[string]string{
		"plain.txt":       "plain.txt",
		"evil\u202etxt":   `evil\u202etxt`,
		"c1\u0085x\u009b": `c1\u0085x\u009b`,
		"bad\xffutf8":     `bad\xffutf8`,
		"nl\nesc\x1b":     `nl\nesc\x1b`,
		"real\ufffd":      "real\ufffd",
		"ünï ✓":           "ünï ✓",
	} {
		require.Equal(t, want, displayName(in), "%q", in)
	}
	var b bytes.Buffer
	require.NoError(t, writeJSON(&b, transferRecord{Name: "a\u202eb\u0085c\x7f"}))
	require.Contains(t, b.String(), `"name":"a\u202eb\u0085c\u007f"`)
	for _, r := range b.String() {
		require.False(t, unsafeRune(r) && r != '\n', "raw %U in JSON output", r)
	}
}

// keygen --force replaces the file at -o; a symlink planted there is
// replaced, its target left alone.
func TestKeygenForceDoesNotFollowSymlinks(t *testing.T) {
	dir := t.TempDir()
	victim := filepath.Join(dir, "victim")
	require.NoError(t, os.WriteFile(victim, []byte("precious\n"), 0o644))
	link := filepath.Join(dir, "id.key")
	require.NoError(t, os.Symlink(victim, link))

	code, _, errs := runCmd(t, context.Background(), "keygen", "-o", link)
	require.Equal(t, 1, code)
	requireOneLine(t, errs, "exists")

	code, out, errs := runCmd(t, context.Background(), "keygen", "-o", link, "--force")
	require.Equal(t, 0, code, errs)
	got, err := os.ReadFile(victim)
	require.NoError(t, err)
	require.Equal(t, "precious\n", string(got))
	st, err := os.Lstat(link)
	require.NoError(t, err)
	require.True(t, st.Mode().IsRegular())
	require.Equal(t, os.FileMode(0o600), st.Mode().Perm())
	k, err := loadPrivateKey(link)
	require.NoError(t, err)
	require.Equal(t, k.Public().String()+"\n", out)
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	require.Len(t, entries, 2, "no temporary file left: %v", entries)
}
