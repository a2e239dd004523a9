package main

import (
	"bytes"
	"context"
	"encoding/json"
	"math/rand/v2"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/flightline/flightline/testnet"
	"github.com/flightline/flightline/transport"
	"github.com/stretchr/testify/require"
)

// syncBuffer is a bytes.Buffer safe for the concurrent writers of a
// subcommand running in a goroutine.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// runCmd runs the CLI in process and returns exit code, stdout and stderr.
func runCmd(t *testing.T, ctx context.Context, args ...string) (int, string, string) {
	t.Helper()
	var out, errb syncBuffer
	code := run(ctx, args, &env{stdout: &out, stderr: &errb})
	return code, out.String(), errb.String()
}

// requireOneLine checks stderr is exactly one line containing want.
func requireOneLine(t *testing.T, stderr, want string) {
	t.Helper()
	require.Equal(t, 1, strings.Count(stderr, "\n"), "stderr must be one line, got:\n%s", stderr)
	require.True(t, strings.HasPrefix(stderr, "flightline"), stderr)
	require.Contains(t, stderr, want)
}

func writeKey(t *testing.T, dir string) (path string, pub transport.PublicKey) {
	t.Helper()
	k, err := transport.GenerateKey()
	require.NoError(t, err)
	path = filepath.Join(dir, "id.key")
	require.NoError(t, writeKeyFile(path, k, false))
	return path, k.Public()
}

func TestDemoInProcess(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 45*time.Second)
	defer cancel()
	code, out, errs := runCmd(t, ctx, "demo", "--size", "8MiB", "--netns", "off", "--streams", "3", "--json")
	require.Equal(t, 0, code, "stderr: %s", errs)
	var rep demoReport
	require.NoError(t, json.Unmarshal([]byte(out), &rep), out)
	require.True(t, rep.OK)
	require.True(t, rep.SHA256Match)
	require.Equal(t, 3, rep.Verified)
	require.Equal(t, uint64(8<<20), rep.Bytes)
	require.Equal(t, "loopback", rep.Where)
	require.Equal(t, "--netns off", rep.WhereReason)
	require.Equal(t, "udp", rep.Datapath)
	require.Positive(t, rep.GoodputMBps)

	// The text form says where it ran and that digests matched.
	cpu, mem := filepath.Join(t.TempDir(), "cpu.pprof"), filepath.Join(t.TempDir(), "mem.pprof")
	code, out, errs = runCmd(t, ctx, "demo", "--size", "1MiB", "--netns", "off", "--cpuprofile", cpu, "--memprofile", mem)
	require.Equal(t, 0, code, "stderr: %s", errs)
	for _, p := range []string{cpu, mem} {
		st, err := os.Stat(p)
		require.NoError(t, err)
		require.Positive(t, st.Size(), p)
	}
	require.Contains(t, out, "where: loopback (--netns off)")
	require.Contains(t, out, "sha256: match (4/4")
	require.Contains(t, out, "datapath: sender udp")
	require.Contains(t, out, "Gbit/s")
}

// startListener runs `flightline listen` in process and returns its address
// and a function that stops it (like SIGINT) and returns exit code, stdout
// and stderr.
func startListener(t *testing.T, args ...string) (netip.AddrPort, func() (int, string, string)) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan netip.AddrPort, 1)
	var out, errb syncBuffer
	e := &env{stdout: &out, stderr: &errb, ready: func(a netip.AddrPort, _ transport.PublicKey) { ready <- a }}
	done := make(chan int, 1)
	go func() { done <- run(ctx, append([]string{"listen"}, args...), e) }()
	var addr netip.AddrPort
	select {
	case addr = <-ready:
	case code := <-done:
		cancel()
		t.Fatalf("listen exited with %d: %s", code, errb.String())
	case <-time.After(10 * time.Second):
		cancel()
		t.Fatal("listener did not start")
	}
	stopped := false
	var code int
	stop := func() (int, string, string) {
		if !stopped {
			stopped = true
			cancel()
			code = <-done
		}
		return code, out.String(), errb.String()
	}
	t.Cleanup(func() { stop() })
	return addr, stop
}

func TestListenSendLoopback(t *testing.T) {
	dir := t.TempDir()
	in, out := filepath.Join(dir, "in"), filepath.Join(dir, "out")
	require.NoError(t, os.Mkdir(in, 0o755))
	require.NoError(t, os.Mkdir(out, 0o755))
	keyPath, pub := writeKey(t, dir)
	empty := filepath.Join(in, "empty.txt")
	big := filepath.Join(in, "big.bin")
	require.NoError(t, os.WriteFile(empty, nil, 0o644))
	data := make([]byte, 3<<20)
	rand.NewChaCha8([32]byte{7}).Read(data)
	require.NoError(t, os.WriteFile(big, data, 0o644))

	addr, stop := startListener(t, "--addr", "127.0.0.1:0", "--key", keyPath, "--dir", out, "--datapath", "udp", "--allow-any")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	code, sout, serr := runCmd(t, ctx, "send", "--to", addr.String(), "--peer", pub.String(), "--datapath", "udp", empty, big)
	require.Equal(t, 0, code, "stderr: %s", serr)
	require.Contains(t, sout, "sent 2 files, 3145728 bytes")
	require.Contains(t, sout, "datapath udp")
	require.Empty(t, serr, "no progress bar when stderr is not a terminal")

	got, err := os.ReadFile(filepath.Join(out, "big.bin"))
	require.NoError(t, err)
	require.True(t, bytes.Equal(data, got), "big.bin differs")
	st, err := os.Stat(filepath.Join(out, "empty.txt"))
	require.NoError(t, err)
	require.Zero(t, st.Size())

	// Sending again is refused: no overwrite without --force.
	code, sout, serr = runCmd(t, ctx, "send", "--to", addr.String(), "--peer", pub.String(), "--json", big)
	require.Equal(t, 1, code)
	requireOneLine(t, serr, "already exists on the receiver")
	var sum sendSummary
	require.NoError(t, json.Unmarshal([]byte(sout), &sum), sout)
	require.Equal(t, 1, sum.Failed)

	// Only the two files, no temporaries left behind.
	entries, err := os.ReadDir(out)
	require.NoError(t, err)
	require.Len(t, entries, 2)

	code, lout, lerr := stop()
	require.Equal(t, 0, code, lerr)
	require.Contains(t, lout, "received empty.txt: 0 bytes")
	require.Contains(t, lout, "received big.bin: 3145728 bytes")
	require.Contains(t, lout, "peer ")
	require.Contains(t, lerr, "file already exists")
	require.Contains(t, lerr, "WARNING: --allow-any: any peer")
}

func TestListenJSONAndAllowlist(t *testing.T) {
	dir := t.TempDir()
	keyPath, pub := writeKey(t, dir)
	cliKey, err := transport.GenerateKey()
	require.NoError(t, err)
	cliKeyPath := filepath.Join(dir, "cli.key")
	require.NoError(t, writeKeyFile(cliKeyPath, cliKey, false))
	file := filepath.Join(dir, "f.txt")
	require.NoError(t, os.WriteFile(file, []byte("hello"), 0o644))
	out := filepath.Join(dir, "out")
	require.NoError(t, os.Mkdir(out, 0o755))

	addr, stop := startListener(t, "--addr", "127.0.0.1:0", "--key", keyPath, "--dir", out,
		"--allow", cliKey.Public().String(), "--json")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	// A key not on the allowlist gets no answer.
	code, _, serr := runCmd(t, ctx, "send", "--to", addr.String(), "--peer", pub.String(), "--handshake-timeout", "300ms", file)
	require.Equal(t, 1, code)
	requireOneLine(t, serr, "no answer within 300ms")

	code, _, serr = runCmd(t, ctx, "send", "--to", addr.String(), "--peer", pub.String(), "--key", cliKeyPath, file)
	require.Equal(t, 0, code, serr)

	code, lout, lerr := stop()
	require.Equal(t, 0, code, lerr)
	var rec transferRecord
	require.NoError(t, json.Unmarshal([]byte(strings.TrimSpace(lout)), &rec), lout)
	require.Equal(t, "f.txt", rec.Name)
	require.Equal(t, uint64(5), rec.Bytes)
	require.Equal(t, cliKey.Public().String(), rec.Peer)
	require.Equal(t, "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824", rec.SHA256)
	require.Empty(t, rec.Error)
}

func TestKeygen(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "k")
	code, out, errs := runCmd(t, context.Background(), "keygen", "-o", path)
	require.Equal(t, 0, code, errs)
	st, err := os.Stat(path)
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o600), st.Mode().Perm())
	k, err := loadPrivateKey(path)
	require.NoError(t, err)
	require.Equal(t, k.Public().String()+"\n", out)

	code, _, errs = runCmd(t, context.Background(), "keygen", "-o", path)
	require.Equal(t, 1, code)
	requireOneLine(t, errs, "exists")
}

func TestErrorsAreOneLine(t *testing.T) {
	dir := t.TempDir()
	badKey := filepath.Join(dir, "bad.key")
	require.NoError(t, os.WriteFile(badKey, []byte("not a key\n"), 0o600))
	goodKey, pub := writeKey(t, dir)
	openKey, groupKey := filepath.Join(dir, "open.key"), filepath.Join(dir, "group.key")
	for p, mode := range map[string]os.FileMode{openKey: 0o644, groupKey: 0o640} {
		k, err := transport.GenerateKey()
		require.NoError(t, err)
		require.NoError(t, os.WriteFile(p, []byte(k.String()+"\n"), mode))
		require.NoError(t, os.Chmod(p, mode)) // whatever the umask
	}
	file := filepath.Join(dir, "f")
	require.NoError(t, os.WriteFile(file, []byte("x"), 0o644))
	peer := pub.String()

	tests := []struct {
		name string
		args []string
		code int
		want string
	}{
		{"unknown command", []string{"fly"}, 2, `unknown command "fly"`},
		{"unknown flag", []string{"send", "--bogus"}, 2, "flag provided but not defined: -bogus"},
		{"bad flag value", []string{"demo", "--streams", "many"}, 2, "invalid value"},
		{"bad size", []string{"demo", "--size", "12XB"}, 2, `size "12XB"`},
		{"bad netns", []string{"demo", "--netns", "maybe"}, 2, "--netns"},
		{"bad datapath", []string{"send", "--to", "127.0.0.1:1", "--peer", peer, "--datapath", "dpdk", file}, 2, "want auto, udp or xdp"},
		{"missing --to", []string{"send", "--peer", peer, file}, 2, "--to is required"},
		{"bad --to", []string{"send", "--to", "localhost", "--peer", peer, file}, 2, "want IP:PORT"},
		{"bad peer key", []string{"send", "--to", "127.0.0.1:1", "--peer", "abc", file}, 2, "parse public key"},
		{"no files", []string{"send", "--to", "127.0.0.1:1", "--peer", peer}, 2, "no files"},
		{"missing file", []string{"send", "--to", "127.0.0.1:1", "--peer", peer, filepath.Join(dir, "nope")}, 1, "no such file"},
		{"bad key text", []string{"listen", "--addr", "127.0.0.1:0", "--key", badKey, "--dir", dir, "--allow-any"}, 1, "parse private key"},
		{"missing key file", []string{"listen", "--addr", "127.0.0.1:0", "--key", filepath.Join(dir, "nope"), "--dir", dir, "--allow-any"}, 1, "no such file"},
		{"bad allow", []string{"listen", "--addr", "127.0.0.1:0", "--key", goodKey, "--dir", dir, "--allow", "zz"}, 2, "--allow"},
		{"bad listen addr", []string{"listen", "--addr", "nowhere", "--key", goodKey, "--dir", dir, "--allow-any"}, 1, "parse address"},
		{"dir missing", []string{"listen", "--addr", "127.0.0.1:0", "--key", goodKey, "--dir", filepath.Join(dir, "nope"), "--allow-any"}, 1, "--dir"},
		{"listen without allowlist", []string{"listen", "--addr", "127.0.0.1:0", "--key", goodKey, "--dir", dir}, 2, "--allow KEYS or --allow-any is required"},
		{"listen allow and allow-any", []string{"listen", "--addr", "127.0.0.1:0", "--key", goodKey, "--dir", dir, "--allow", peer, "--allow-any"}, 2, "exclude each other"},
		{"key readable by others", []string{"listen", "--addr", "127.0.0.1:0", "--key", openKey, "--dir", dir, "--allow-any"}, 1, "permissions 0644 are too open"},
		{"send key readable by group", []string{"send", "--to", "127.0.0.1:1", "--peer", peer, "--key", groupKey, file}, 1, "permissions 0640 are too open"},
		{"keygen extra arg", []string{"keygen", "x"}, 2, "unexpected argument"},
		{"testnet no sub", []string{"testnet"}, 2, "want a subcommand"},
		{"testnet bad id", []string{"testnet", "down", "../etc"}, 2, "not a network id"},
		{"testnet bad loss", []string{"testnet", "up", "--loss", "2"}, 2, "probability"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			// Bounded: a command that should have failed but runs (a
			// listener) ends with the context and fails the test.
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			code, _, errs := runCmd(t, ctx, tc.args...)
			require.Equal(t, tc.code, code, errs)
			requireOneLine(t, errs, tc.want)
		})
	}
}

func TestUnreachablePeer(t *testing.T) {
	dir := t.TempDir()
	_, pub := writeKey(t, dir)
	file := filepath.Join(dir, "f")
	require.NoError(t, os.WriteFile(file, []byte("x"), 0o644))
	start := time.Now()
	// Port 9 (discard) on loopback: nothing answers.
	code, _, errs := runCmd(t, context.Background(), "send", "--to", "127.0.0.1:9", "--peer", pub.String(),
		"--handshake-timeout", "500ms", file)
	require.Equal(t, 1, code)
	requireOneLine(t, errs, "peer unreachable, not listening, or its public key differs")
	require.Less(t, time.Since(start), 10*time.Second)
}

func TestHelpExitsZero(t *testing.T) {
	code, out, errs := runCmd(t, context.Background(), "send", "-h")
	require.Equal(t, 0, code)
	require.Empty(t, errs)
	require.Contains(t, out, "usage: flightline send")
	require.Contains(t, out, "-handshake-timeout")
}

// TestDemoNetns runs the demo on a veth pair in namespaces with the default
// datapath selection (AF_XDP where it works). It needs root: skipped
// otherwise, fatal under CI=true.
func TestDemoNetns(t *testing.T) {
	testnet.RequirePrivileged(t)
	ctx, cancel := context.WithTimeout(context.Background(), 45*time.Second)
	defer cancel()
	code, out, errs := runCmd(t, ctx, "demo", "--size", "8MiB", "--netns", "on", "--json")
	require.Equal(t, 0, code, "stderr: %s", errs)
	var rep demoReport
	require.NoError(t, json.Unmarshal([]byte(out), &rep), out)
	require.True(t, rep.OK)
	require.Equal(t, "netns", rep.Where)
	require.Contains(t, []string{"udp", "xdp"}, rep.Datapath)
	// The network is gone afterwards.
	_, err := os.Stat(filepath.Join(netnsDir, rep.Network+"a"))
	require.ErrorIs(t, err, os.ErrNotExist)
}
