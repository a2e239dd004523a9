package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/flightline/flightline/transport"
	"github.com/stretchr/testify/require"
)

// resumeStream is what a resuming sender puts on the stream when it starts
// at byte from of data: header, offset, the rest, the whole file's SHA-256.
func resumeStream(t testing.TB, name string, data []byte, from int) []byte {
	b := mustHeader(t, header{Name: name, Size: uint64(len(data)), Resume: true})
	b = binary.BigEndian.AppendUint64(b, uint64(from))
	b = append(b, data[from:]...)
	sum := sha256.Sum256(data)
	return append(b, sum[:]...)
}

// offerFor is the receiver's resume offer for a partial holding prefix.
func offerFor(prefix []byte) []byte {
	sum := sha256.Sum256(prefix)
	return append(binary.BigEndian.AppendUint64(nil, uint64(len(prefix))), sum[:]...)
}

// interruptReceiver runs a plain transfer of data to rc that delivers the
// first n bytes and then stalls, and stops the receiver (its context ends,
// as on listen's shutdown) while it waits for more. It returns the partial
// file's path.
func interruptReceiver(t *testing.T, rc *receiver, peer transport.PublicKey, name string, data []byte, n int) string {
	t.Helper()
	s := newFakeStream(append(mustHeader(t, header{Name: name, Size: uint64(len(data))}), data[:n]...), false)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { _, err := rc.serve(ctx, s, peer); done <- err }()
	<-s.waiting // every byte given has been read (and so written)
	cancel()
	require.Error(t, <-done)
	require.Equal(t, xferShutdown, s.reset())
	return filepath.Join(rc.dir, partialName(peer, name))
}

func randomData(n int, seed byte) []byte {
	b := make([]byte, n)
	rand.NewChaCha8([32]byte{seed}).Read(b)
	return b
}

// A receiver stopped mid-transfer keeps what it received as the sender's
// partial file (mode 0600, nothing under the real name); a resume starts
// after it, and the file is renamed into place only once the whole file's
// SHA-256 matched.
func TestResumeAfterReceiverStopped(t *testing.T) {
	dir := t.TempDir()
	rc := &receiver{dir: dir, maxSize: 1 << 20, keepPartial: time.Hour}
	peer := testKey(t)
	data := randomData(100_000, 1)

	partial := interruptReceiver(t, rc, peer, "f.bin", data, 40_000)
	got, err := os.ReadFile(partial)
	require.NoError(t, err)
	require.Equal(t, data[:40_000], got)
	st, err := os.Stat(partial)
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o600), st.Mode().Perm())
	_, err = os.Lstat(filepath.Join(dir, "f.bin"))
	require.ErrorIs(t, err, os.ErrNotExist, "no truncated file under the real name")

	s := newFakeStream(resumeStream(t, "f.bin", data, 40_000), true)
	res, err := rc.serve(context.Background(), s, peer)
	require.NoError(t, err)
	require.Equal(t, uint64(40_000), res.Resumed)
	require.Equal(t, uint64(60_000), res.Bytes)
	sum := sha256.Sum256(data)
	require.Equal(t, sum, res.Digest, "the digest covers the whole file")
	require.Equal(t, append(offerFor(data[:40_000]), sum[:]...), s.written.Bytes())
	got, err = os.ReadFile(filepath.Join(dir, "f.bin"))
	require.NoError(t, err)
	require.True(t, bytes.Equal(data, got))
	requireNoPartials(t, dir)
}

func requireNoPartials(t *testing.T, dir string) {
	t.Helper()
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	for _, e := range entries {
		require.False(t, strings.HasPrefix(e.Name(), tempPrefix), "left behind: %s", e.Name())
	}
}

// A partial modified after it was offered (or a sender that accepts a
// prefix it should not have) makes the whole-file SHA-256 differ: the
// receiver refuses (code 10), deletes the partial and renames nothing.
func TestResumeDamagedPartialNeverCommitted(t *testing.T) {
	dir := t.TempDir()
	rc := &receiver{dir: dir, maxSize: 1 << 20, keepPartial: time.Hour}
	peer := testKey(t)
	data := randomData(50_000, 2)
	partial := interruptReceiver(t, rc, peer, "f.bin", data, 20_000)
	damaged := bytes.Clone(data[:20_000])
	damaged[1234] ^= 0x40
	require.NoError(t, os.WriteFile(partial, damaged, 0o600))

	// This sender answers the offer with 20000 whatever it says.
	s := newFakeStream(resumeStream(t, "f.bin", data, 20_000), true)
	_, err := rc.serve(context.Background(), s, peer)
	require.ErrorContains(t, err, "discarded the partial file")
	require.Equal(t, xferDigest, s.reset())
	require.Equal(t, offerFor(damaged), s.written.Bytes(), "the offer hashes the partial as it is on disk")
	_, err = os.Lstat(filepath.Join(dir, "f.bin"))
	require.ErrorIs(t, err, os.ErrNotExist)
	requireNoPartials(t, dir)

	// An honest sender compares the offer with its own prefix and starts
	// over: the damaged partial is truncated, the file is whole.
	require.NoError(t, os.WriteFile(partial, damaged, 0o600))
	s = newFakeStream(resumeStream(t, "f.bin", data, 0), true)
	res, err := rc.serve(context.Background(), s, peer)
	require.NoError(t, err)
	require.Zero(t, res.Resumed)
	got, err := os.ReadFile(filepath.Join(dir, "f.bin"))
	require.NoError(t, err)
	require.True(t, bytes.Equal(data, got))
	requireNoPartials(t, dir)
}

// A partial belongs to the sender key that wrote it: another key is
// offered nothing and cannot touch it; a plain (non-resume) transfer from
// the owner starts over; a resume answer other than the offer or 0 is
// refused.
func TestResumePartialOwnedByPeerKey(t *testing.T) {
	dir := t.TempDir()
	rc := &receiver{dir: dir, maxSize: 1 << 20, keepPartial: time.Hour}
	owner, other := testKey(t), testKey(t)
	data := randomData(30_000, 3)
	partial := interruptReceiver(t, rc, owner, "f.bin", data, 10_000)
	require.NotEqual(t, partial, filepath.Join(dir, partialName(other, "f.bin")))

	// The other key claims to start at 10000: only 0 is valid for it.
	s := newFakeStream(resumeStream(t, "f.bin", data, 10_000), true)
	_, err := rc.serve(context.Background(), s, other)
	require.ErrorContains(t, err, "sender answered resume offset 10000, offered 0")
	require.Equal(t, xferBadHeader, s.reset())
	require.Equal(t, offerFor(nil), s.written.Bytes())
	got, err := os.ReadFile(partial)
	require.NoError(t, err)
	require.Equal(t, data[:10_000], got, "the owner's partial is untouched")

	evil := randomData(30_000, 4)
	s = newFakeStream(resumeStream(t, "f.bin", evil, 0), true)
	_, err = rc.serve(context.Background(), s, other)
	require.NoError(t, err)
	got, err = os.ReadFile(partial)
	require.NoError(t, err)
	require.Equal(t, data[:10_000], got, "the owner's partial is untouched")
	require.NoError(t, os.Remove(filepath.Join(dir, "f.bin")))

	// A plain transfer from the owner (an old sender) starts over.
	s = newFakeStream(append(mustHeader(t, header{Name: "f.bin", Size: uint64(len(evil))}), evil...), true)
	_, err = rc.serve(context.Background(), s, owner)
	require.NoError(t, err)
	got, err = os.ReadFile(filepath.Join(dir, "f.bin"))
	require.NoError(t, err)
	require.True(t, bytes.Equal(evil, got))
	requireNoPartials(t, dir)
}

// Without --keep-partial (0) an interrupted transfer leaves nothing and a
// resume request is answered with an empty offer.
func TestResumeWithPartialsOff(t *testing.T) {
	dir := t.TempDir()
	rc := &receiver{dir: dir, maxSize: 1 << 20}
	peer := testKey(t)
	data := randomData(10_000, 5)
	interruptReceiver(t, rc, peer, "f.bin", data, 5_000)
	requireNoPartials(t, dir)
	s := newFakeStream(resumeStream(t, "f.bin", data, 0), true)
	_, err := rc.serve(context.Background(), s, peer)
	require.NoError(t, err)
	require.Equal(t, append(offerFor(nil), func() []byte { s := sha256.Sum256(data); return s[:] }()...), s.written.Bytes())
}

// A second transfer of the same partial waits for the running one to end
// instead of writing into the same file.
func TestPartialClaimWaits(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var p partials
		release, err := p.claim(context.Background(), "x")
		require.NoError(t, err)
		got := make(chan func())
		go func() {
			r, err := p.claim(context.Background(), "x")
			if err == nil {
				got <- r
			}
		}()
		synctest.Wait()
		select {
		case <-got:
			t.Fatal("second claim did not wait")
		default:
		}
		other, err := p.claim(context.Background(), "y")
		require.NoError(t, err, "other partials are independent")
		other()
		release()
		(<-got)()

		// A waiter gives up when its context ends.
		release, err = p.claim(context.Background(), "x")
		require.NoError(t, err)
		ctx, cancel := context.WithCancel(context.Background())
		errc := make(chan error)
		go func() { _, err := p.claim(ctx, "x"); errc <- err }()
		synctest.Wait()
		cancel()
		require.ErrorIs(t, <-errc, context.Canceled)
		release()
	})
}

// expire removes partial files last written before the cutoff, except one
// in use, and nothing else.
func TestExpirePartials(t *testing.T) {
	dir := t.TempDir()
	now := time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC)
	mk := func(name string, age time.Duration) string {
		p := filepath.Join(dir, name)
		require.NoError(t, os.WriteFile(p, []byte("x"), 0o600))
		require.NoError(t, os.Chtimes(p, now.Add(-age), now.Add(-age)))
		return p
	}
	old := mk(partialPrefix+"old", 25*time.Hour)
	fresh := mk(partialPrefix+"fresh", time.Hour)
	busy := mk(partialPrefix+"busy", 48*time.Hour)
	data := mk("data.bin", 48*time.Hour)
	tmp := mk(tempPrefix+"123", 48*time.Hour)
	var p partials
	release, err := p.claim(context.Background(), busy)
	require.NoError(t, err)
	n, err := p.expire(dir, now.Add(-24*time.Hour))
	require.NoError(t, err)
	require.Equal(t, 1, n)
	for path, want := range map[string]bool{old: false, fresh: true, busy: true, data: true, tmp: true} {
		_, err := os.Stat(path)
		require.Equal(t, want, err == nil, path)
	}
	release()
	n, err = p.expire(dir, now.Add(-24*time.Hour))
	require.NoError(t, err)
	require.Equal(t, 1, n)
	_, err = os.Stat(busy)
	require.ErrorIs(t, err, os.ErrNotExist)
}

// cliPeer is an in-process sender with a fixed identity, for interrupting
// a transfer at a chosen byte.
func cliPeer(t *testing.T, keyPath string, to netip.AddrPort, server transport.PublicKey) *transport.Conn {
	t.Helper()
	key, err := loadPrivateKey(keyPath)
	require.NoError(t, err)
	ep, err := transport.Bind("127.0.0.1:0", &transport.Config{Datapath: "udp", PrivateKey: key})
	require.NoError(t, err)
	t.Cleanup(func() { ep.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := ep.Dial(ctx, to, server)
	require.NoError(t, err)
	return conn
}

// stallReader yields r's first n bytes, then calls at (once) and blocks
// until ctx ends.
type stallReader struct {
	ctx context.Context
	r   io.Reader
	n   int
	at  func()
}

func (s *stallReader) Read(p []byte) (int, error) {
	if s.n == 0 {
		if s.at != nil {
			s.at()
			s.at = nil
		}
		<-s.ctx.Done()
		return 0, s.ctx.Err()
	}
	p = p[:min(len(p), s.n)]
	n, err := s.r.Read(p)
	s.n -= n
	return n, err
}

// resumeFixture is a sender key, a listener key, an 8 MiB file and the
// directories of a resume test.
type resumeFixture struct {
	in, out, file  string
	data           []byte
	srvKey, cliKey string
	srvPub         transport.PublicKey
	cliPub         transport.PublicKey
	stallAt        int
	partial        string
	listenArgs     []string
}

func newResumeFixture(t *testing.T) *resumeFixture {
	dir := t.TempDir()
	f := &resumeFixture{in: filepath.Join(dir, "in"), out: filepath.Join(dir, "out")}
	require.NoError(t, os.Mkdir(f.in, 0o755))
	require.NoError(t, os.Mkdir(f.out, 0o755))
	f.srvKey, f.srvPub = writeKey(t, dir)
	f.cliKey = filepath.Join(dir, "cli.key")
	k, err := transport.GenerateKey()
	require.NoError(t, err)
	require.NoError(t, writeKeyFile(f.cliKey, k, false))
	f.cliPub = k.Public()
	f.data = randomData(8<<20, 9)
	f.file = filepath.Join(f.in, "big.bin")
	require.NoError(t, os.WriteFile(f.file, f.data, 0o644))
	// 7 MiB handed to the stream: with the listener's 4 MiB stream
	// window and the 1 MiB send buffer, the receiver has read (and so
	// written) at least 2 MiB of it.
	f.stallAt = 7 << 20
	f.partial = filepath.Join(f.out, partialName(f.cliPub, "big.bin"))
	f.listenArgs = []string{"--addr", "127.0.0.1:0", "--key", f.srvKey, "--dir", f.out, "--datapath", "udp", "--allow", f.cliPub.String(), "--grace", "0s"}
	return f
}

// resumed parses the sender's and the listener's report of a resume.
func resumedBytes(t *testing.T, sendOut, listenOut string) uint64 {
	t.Helper()
	var n uint64
	if m := regexp.MustCompile(`resumed: (\d+) bytes`).FindStringSubmatch(sendOut); m != nil {
		var err error
		n, err = strconv.ParseUint(m[1], 10, 64)
		require.NoError(t, err)
		require.Contains(t, listenOut, fmt.Sprintf("received big.bin: %d bytes (resumed at byte %d)", 8<<20-n, n))
	} else {
		require.NotContains(t, listenOut, "resumed at byte")
	}
	return n
}

func (f *resumeFixture) requireDelivered(t *testing.T) {
	t.Helper()
	got, err := os.ReadFile(filepath.Join(f.out, "big.bin"))
	require.NoError(t, err)
	require.Equal(t, sha256.Sum256(f.data), sha256.Sum256(got))
	require.True(t, bytes.Equal(f.data, got))
	requireNoPartials(t, f.out)
}

// The sender dies mid-transfer (its context is cancelled after 7 of 8 MiB,
// which resets the stream, and its endpoint goes): `send --resume` with the
// same key continues after what the receiver holds.
func TestSendResumeAfterSenderKilled(t *testing.T) {
	f := newResumeFixture(t)
	addr, stop := startListener(t, f.listenArgs...)
	conn := cliPeer(t, f.cliKey, addr, f.srvPub)
	ctx, cancel := context.WithCancel(context.Background())
	r := &stallReader{ctx: ctx, r: bytes.NewReader(f.data), n: f.stallAt, at: cancel}
	_, err := sendOne(ctx, conn, "big.bin", uint64(len(f.data)), r, nil, false)
	require.ErrorIs(t, err, context.Canceled)
	conn.Close()

	rctx, rcancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer rcancel()
	code, sout, serr := runCmd(t, rctx, "send", "--to", addr.String(), "--peer", f.srvPub.String(), "--key", f.cliKey, "--resume", f.file)
	require.Equal(t, 0, code, serr)
	code, lout, lerr := stop()
	require.Equal(t, 0, code, lerr)
	n := resumedBytes(t, sout, lout)
	require.GreaterOrEqual(t, n, uint64(1<<20), "send: %s\nlisten: %s", sout, lout)
	require.Less(t, n, uint64(f.stallAt))
	require.Contains(t, sout, fmt.Sprintf("sent 1 file, %d bytes", 8<<20-n))
	f.requireDelivered(t)
}

// stopReceiverMidTransfer runs a transfer that stalls after 7 MiB, stops
// the listener (grace 0: the transfer is cut) and returns the partial's
// contents.
func (f *resumeFixture) stopReceiverMidTransfer(t *testing.T) []byte {
	t.Helper()
	addr, stop := startListener(t, f.listenArgs...)
	conn := cliPeer(t, f.cliKey, addr, f.srvPub)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	stalled := make(chan struct{})
	r := &stallReader{ctx: ctx, r: bytes.NewReader(f.data), n: f.stallAt, at: func() { close(stalled) }}
	sent := make(chan error, 1)
	go func() { _, err := sendOne(ctx, conn, "big.bin", uint64(len(f.data)), r, nil, false); sent <- err }()
	<-stalled
	code, _, lerr := stop()
	require.Equal(t, 0, code, lerr)
	require.Contains(t, lerr, "failed")
	cancel()
	require.Error(t, <-sent)
	conn.Close()

	st, err := os.Stat(f.partial)
	require.NoError(t, err, "the interrupted transfer left its partial")
	require.Equal(t, os.FileMode(0o600), st.Mode().Perm())
	_, err = os.Lstat(filepath.Join(f.out, "big.bin"))
	require.ErrorIs(t, err, os.ErrNotExist, "nothing under the real name")
	got, err := os.ReadFile(f.partial)
	require.NoError(t, err)
	require.GreaterOrEqual(t, len(got), 1<<20)
	require.True(t, bytes.Equal(f.data[:len(got)], got))
	return got
}

// The receiver is stopped mid-transfer; a restarted receiver on the same
// directory resumes exactly after the partial it kept.
func TestSendResumeAfterReceiverStopped(t *testing.T) {
	f := newResumeFixture(t)
	held := f.stopReceiverMidTransfer(t)

	addr, stop := startListener(t, append(slices.Clone(f.listenArgs), "--json")...)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	code, sout, serr := runCmd(t, ctx, "send", "--to", addr.String(), "--peer", f.srvPub.String(), "--key", f.cliKey, "--resume", "--json", f.file)
	require.Equal(t, 0, code, serr)
	var sum sendSummary
	require.NoError(t, json.Unmarshal([]byte(sout), &sum), sout)
	require.Equal(t, uint64(len(held)), sum.ResumedBytes)
	require.Equal(t, uint64(len(f.data)-len(held)), sum.Bytes)
	code, lout, lerr := stop()
	require.Equal(t, 0, code, lerr)
	var rec transferRecord
	require.NoError(t, json.Unmarshal([]byte(lout), &rec), lout)
	require.Empty(t, rec.Error)
	require.Equal(t, uint64(len(held)), rec.ResumedFrom)
	require.Equal(t, uint64(len(f.data)-len(held)), rec.Bytes)
	require.Equal(t, fmt.Sprintf("%x", sha256.Sum256(f.data)), rec.SHA256, "the digest covers the whole file")
	f.requireDelivered(t)
}

// A partial damaged on the receiver's disk does not match the sender's
// prefix: the sender starts from 0 and the file arrives whole.
func TestSendResumeTamperedPartialRestarts(t *testing.T) {
	f := newResumeFixture(t)
	held := f.stopReceiverMidTransfer(t)
	held[len(held)/2] ^= 1
	require.NoError(t, os.WriteFile(f.partial, held, 0o600))

	addr, stop := startListener(t, f.listenArgs...)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	code, sout, serr := runCmd(t, ctx, "send", "--to", addr.String(), "--peer", f.srvPub.String(), "--key", f.cliKey, "--resume", f.file)
	require.Equal(t, 0, code, serr)
	require.Contains(t, sout, fmt.Sprintf("sent 1 file, %d bytes", len(f.data)))
	require.NotContains(t, sout, "resumed")
	code, lout, lerr := stop()
	require.Equal(t, 0, code, lerr)
	require.Contains(t, lout, fmt.Sprintf("received big.bin: %d bytes in", len(f.data)))
	f.requireDelivered(t)
}

// Another sender key gets no offer from someone else's partial: it sends
// the whole file, and the owner's partial stays.
func TestSendResumeOtherKeyIgnoresPartial(t *testing.T) {
	f := newResumeFixture(t)
	held := f.stopReceiverMidTransfer(t)
	otherKey := filepath.Join(t.TempDir(), "other.key")
	k, err := transport.GenerateKey()
	require.NoError(t, err)
	require.NoError(t, writeKeyFile(otherKey, k, false))

	args := append([]string{}, f.listenArgs...)
	args[len(args)-3] = f.cliPub.String() + "," + k.Public().String() // --allow both
	addr, stop := startListener(t, args...)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	code, sout, serr := runCmd(t, ctx, "send", "--to", addr.String(), "--peer", f.srvPub.String(), "--key", otherKey, "--resume", f.file)
	require.Equal(t, 0, code, serr)
	require.Contains(t, sout, fmt.Sprintf("sent 1 file, %d bytes", len(f.data)))
	require.NotContains(t, sout, "resumed")
	got, err := os.ReadFile(f.partial)
	require.NoError(t, err)
	require.Equal(t, held, got, "the owner's partial is untouched")
	stop()
	gotFile, err := os.ReadFile(filepath.Join(f.out, "big.bin"))
	require.NoError(t, err)
	require.True(t, bytes.Equal(f.data, gotFile))
}

// A receiver without resume support refuses the resume flag (code 1): the
// sender says so instead of a generic header error.
func TestSendResumeToOldReceiver(t *testing.T) {
	srv, err := transport.GenerateKey()
	require.NoError(t, err)
	ep, err := transport.Listen("127.0.0.1:0", &transport.Config{Datapath: "udp", PrivateKey: srv})
	require.NoError(t, err)
	defer ep.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	go func() {
		c, err := ep.Accept(ctx)
		if err != nil {
			return
		}
		s, err := c.AcceptStream(ctx)
		if err != nil {
			return
		}
		// What a version-1 receiver without §15.1 does with flags 0x01.
		var fixed [fixedHeaderLen]byte
		if _, err := io.ReadFull(streamReader{ctx, s}, fixed[:]); err == nil && fixed[5] != 0 {
			s.CancelRead(xferBadHeader)
			s.CancelWrite(xferBadHeader)
		}
	}()
	dir := t.TempDir()
	file := filepath.Join(dir, "f.bin")
	require.NoError(t, os.WriteFile(file, []byte("hello"), 0o644))
	keyPath, _ := writeKey(t, dir)
	code, _, serr := runCmd(t, ctx, "send", "--to", ep.LocalAddr().String(), "--peer", srv.Public().String(), "--key", keyPath, "--resume", file)
	require.Equal(t, 1, code)
	requireOneLine(t, serr, "receiver rejected the resume request (a receiver without resume support does; send without --resume)")
}

// A symlink or a hard link planted under a partial's name is refused, and
// the file it points to is left alone.
func TestPartialLinksRefused(t *testing.T) {
	dir := t.TempDir()
	rc := &receiver{dir: dir, maxSize: 1 << 20, keepPartial: time.Hour}
	peer := testKey(t)
	victim := filepath.Join(t.TempDir(), "victim")
	partial := filepath.Join(dir, partialName(peer, "f.bin"))
	data := randomData(1000, 6)
	for _, link := range []func(string, string) error{os.Symlink, os.Link} {
		require.NoError(t, os.WriteFile(victim, []byte("precious"), 0o644))
		require.NoError(t, link(victim, partial))
		s := newFakeStream(resumeStream(t, "f.bin", data, 0), true)
		_, err := rc.serve(context.Background(), s, peer)
		require.ErrorContains(t, err, "open partial file")
		require.Equal(t, xferIO, s.reset())
		got, err := os.ReadFile(victim)
		require.NoError(t, err)
		require.Equal(t, "precious", string(got))
		require.NoError(t, os.Remove(partial))
	}
}

// A partial longer than the file now sent (the file shrank) is offered as
// nothing, and none of its bytes survive past the new file's end.
func TestResumePartialLongerThanFile(t *testing.T) {
	dir := t.TempDir()
	rc := &receiver{dir: dir, maxSize: 1 << 20, keepPartial: time.Hour}
	peer := testKey(t)
	interruptReceiver(t, rc, peer, "f.bin", randomData(50_000, 7), 40_000)
	short := randomData(10_000, 8)
	s := newFakeStream(resumeStream(t, "f.bin", short, 0), true)
	_, err := rc.serve(context.Background(), s, peer)
	require.NoError(t, err)
	require.Equal(t, offerFor(nil), s.written.Bytes()[:offerLen])
	got, err := os.ReadFile(filepath.Join(dir, "f.bin"))
	require.NoError(t, err)
	require.Equal(t, len(short), len(got), "no bytes of the old partial after the file")
	require.True(t, bytes.Equal(short, got))
}

// listen sweeps partial files older than --keep-partial at start (and says
// so); newer ones and other files stay. A negative duration is a usage
// error.
func TestListenExpiresPartials(t *testing.T) {
	dir := t.TempDir()
	keyPath, _ := writeKey(t, dir)
	out := filepath.Join(dir, "out")
	require.NoError(t, os.Mkdir(out, 0o755))
	old, fresh := filepath.Join(out, partialPrefix+"a"), filepath.Join(out, partialPrefix+"b")
	for p, age := range map[string]time.Duration{old: 3 * time.Hour, fresh: time.Hour} {
		require.NoError(t, os.WriteFile(p, []byte("x"), 0o600))
		mt := time.Now().Add(-age)
		require.NoError(t, os.Chtimes(p, mt, mt))
	}
	_, stop := startListener(t, "--addr", "127.0.0.1:0", "--key", keyPath, "--dir", out, "--allow-any", "--keep-partial", "2h")
	code, _, lerr := stop() // the first sweep has finished when listen returns
	require.Equal(t, 0, code, lerr)
	require.Contains(t, lerr, "flightline listen: removed 1 partial file older than 2h0m0s (--keep-partial)")
	_, err := os.Stat(old)
	require.ErrorIs(t, err, os.ErrNotExist)
	_, err = os.Stat(fresh)
	require.NoError(t, err)

	code, _, errs := runCmd(t, context.Background(), "listen", "--addr", "127.0.0.1:0", "--key", keyPath, "--dir", out, "--allow-any", "--keep-partial", "-1s")
	require.Equal(t, 2, code)
	requireOneLine(t, errs, "--keep-partial -1s")

	code, _, errs = runCmd(t, context.Background(), "send", "--to", "127.0.0.1:1", "--peer", testKey(t).String(), "--resume", keyPath)
	require.Equal(t, 2, code)
	requireOneLine(t, errs, "--resume needs --key")
}
