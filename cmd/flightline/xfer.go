package main

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sync/atomic"
	"time"

	"github.com/flightline/flightline/transport"
)

// copyBufSize is the chunk size moved between a file and a stream. It is a
// quarter of the default stream send buffer, so a write rarely blocks midway.
const copyBufSize = 256 << 10

// defaultMaxSize caps the size a receiver accepts by default (1 TiB): large
// enough for any real transfer, small enough that a malicious header cannot
// promise an endless stream.
const defaultMaxSize = 1 << 40

// result is one finished (or failed) transfer, as both sides report it.
type result struct {
	Name     string        // name as sent (sender) or as written (receiver)
	Path     string        // receiver: where the file was written; "" when discarded
	Bytes    uint64        // payload bytes, header excluded
	Duration time.Duration // from stream open/accept to digest sent/verified
	Digest   [32]byte      // SHA-256 of the payload
}

// xferStream is what a transfer needs of a stream (a *transport.Stream;
// tests substitute their own).
type xferStream interface {
	ReadContext(ctx context.Context, p []byte) (int, error)
	WriteContext(ctx context.Context, p []byte) (int, error)
	CancelRead(code transport.StreamErrorCode)
	CancelWrite(code transport.StreamErrorCode)
	Close() error
}

// streamReader adapts a stream to io.Reader bounded by ctx.
type streamReader struct {
	ctx context.Context
	s   xferStream
}

func (r streamReader) Read(p []byte) (int, error) { return r.s.ReadContext(r.ctx, p) }

// refusal is a receiver-side failure that is reported to the sender with a
// stream reset code.
type refusal struct {
	code uint64
	err  error
}

func (r *refusal) Error() string { return r.err.Error() }
func (r *refusal) Unwrap() error { return r.err }

func refuse(code uint64, err error) error { return &refusal{code: code, err: err} }

// receiver handles incoming transfer streams. The zero dir means discard
// the data (the demo), still hashing it.
type receiver struct {
	dir     string
	force   bool
	maxSize uint64
	// headerTimeout resets a stream whose header is not complete this long
	// after it was accepted; 0: no limit.
	headerTimeout time.Duration
	// peers caps what one peer may have in progress; nil: no caps.
	peers *peerLimits
}

// serve runs one transfer on s from peer: header, data, digest. On failure
// it resets the stream with a code the sender can explain and returns the
// error.
func (rc *receiver) serve(ctx context.Context, s xferStream, peer transport.PublicKey) (result, error) {
	start := time.Now()
	res, err := rc.receive(ctx, s, peer)
	res.Duration = time.Since(start)
	if err != nil {
		code := uint64(xferIO)
		var rf *refusal
		if errors.As(err, &rf) {
			code = rf.code
		}
		if ctx.Err() != nil {
			code = xferShutdown
		}
		s.CancelRead(transport.StreamErrorCode(code))
		s.CancelWrite(transport.StreamErrorCode(code))
		return res, err
	}
	if _, err := s.WriteContext(ctx, res.Digest[:]); err != nil {
		return res, fmt.Errorf("send digest: %w", err)
	}
	if err := s.Close(); err != nil {
		return res, fmt.Errorf("close stream: %w", err)
	}
	return res, nil
}

func (rc *receiver) receive(ctx context.Context, s xferStream, peer transport.PublicKey) (result, error) {
	if !rc.peers.acquireStream(peer) {
		return result{}, refuse(xferPeerLimit, fmt.Errorf("peer %s already has %d transfers running (--max-streams-per-peer)", peer, rc.peers.maxStreams))
	}
	defer rc.peers.releaseStream(peer)
	r := streamReader{ctx, s}
	hctx := ctx
	if rc.headerTimeout > 0 {
		var cancel context.CancelFunc
		hctx, cancel = context.WithTimeout(ctx, rc.headerTimeout)
		defer cancel()
	}
	h, err := readHeader(streamReader{hctx, s}, rc.maxSize)
	if err != nil {
		if hctx.Err() != nil && ctx.Err() == nil {
			return result{}, refuse(xferTimeout, fmt.Errorf("no complete header within %v (--header-timeout)", rc.headerTimeout))
		}
		if errors.Is(err, errTooLarge) {
			return result{}, refuse(xferTooLarge, err)
		}
		return result{}, refuse(xferBadHeader, err)
	}
	res := result{Name: h.Name}
	if !rc.peers.acquireBytes(peer, h.Size) {
		return res, refuse(xferPeerLimit, fmt.Errorf("peer %s: %d more bytes would exceed --max-bytes-per-peer %d", peer, h.Size, rc.peers.maxBytes))
	}
	defer rc.peers.releaseBytes(peer, h.Size)
	name, err := sanitizeName(h.Name)
	if err != nil {
		return res, refuse(xferBadName, err)
	}
	res.Name = name
	var dst io.Writer = io.Discard
	var f *os.File
	if rc.dir != "" {
		res.Path = filepath.Join(rc.dir, name)
		// Early check so a refused file costs no transfer; the commit
		// below re-checks atomically.
		if _, err := os.Lstat(res.Path); err == nil && !rc.force {
			return res, refuse(xferExists, fmt.Errorf("%s: %w", res.Path, fs.ErrExist))
		}
		f, err = os.CreateTemp(rc.dir, tempPrefix+"*")
		if err != nil {
			return res, refuse(xferIO, fmt.Errorf("create temporary file: %w", err))
		}
		defer func() {
			f.Close()
			os.Remove(f.Name()) // no-op after a successful commit
		}()
		dst = f
	}
	sum := sha256.New()
	buf := make([]byte, copyBufSize)
	n, err := io.CopyBuffer(io.MultiWriter(dst, sum), io.LimitReader(r, int64(h.Size)), buf)
	res.Bytes = uint64(n)
	if err != nil {
		var werr *fs.PathError
		if errors.As(err, &werr) {
			return res, refuse(xferIO, fmt.Errorf("write %s: %w", res.Path, err))
		}
		return res, fmt.Errorf("receive %s: %w", name, err)
	}
	if uint64(n) < h.Size {
		return res, refuse(xferShort, fmt.Errorf("receive %s: stream ended after %d of %d bytes", name, n, h.Size))
	}
	// The sender must finish the stream right after size bytes.
	if m, err := r.Read(buf[:1]); m > 0 || !errors.Is(err, io.EOF) {
		if err != nil && !errors.Is(err, io.EOF) {
			return res, fmt.Errorf("receive %s: %w", name, err)
		}
		return res, refuse(xferShort, fmt.Errorf("receive %s: more than the announced %d bytes", name, h.Size))
	}
	copy(res.Digest[:], sum.Sum(nil))
	if f != nil {
		if err := rc.commit(f, res.Path); err != nil {
			return res, err
		}
	}
	return res, nil
}

// commit gives a complete temporary file its final name. Without --force it
// uses link(2), which fails when the name exists, so two transfers of the
// same name cannot overwrite each other.
func (rc *receiver) commit(f *os.File, path string) error {
	if err := f.Chmod(0o644); err != nil {
		return refuse(xferIO, fmt.Errorf("chmod %s: %w", f.Name(), err))
	}
	if err := f.Close(); err != nil {
		return refuse(xferIO, fmt.Errorf("close %s: %w", f.Name(), err))
	}
	if rc.force {
		if err := os.Rename(f.Name(), path); err != nil {
			return refuse(xferIO, fmt.Errorf("rename to %s: %w", path, err))
		}
		return nil
	}
	if err := os.Link(f.Name(), path); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return refuse(xferExists, fmt.Errorf("%s: %w", path, fs.ErrExist))
		}
		return refuse(xferIO, fmt.Errorf("link %s: %w", path, err))
	}
	return nil // the deferred Remove drops the temporary name
}

// sendOne sends one file on a new stream of conn and verifies the digest the
// receiver answers with. r must yield exactly size bytes; sent counts payload
// bytes handed to the stream, for progress display.
func sendOne(ctx context.Context, conn *transport.Conn, name string, size uint64, r io.Reader, sent *atomic.Uint64) (result, error) {
	start := time.Now()
	res := result{Name: name}
	hdr, err := encodeHeader(nil, header{Name: name, Size: size})
	if err != nil {
		return res, err
	}
	s, err := conn.OpenStreamSync(ctx)
	if err != nil {
		return res, fmt.Errorf("open stream for %s: %w", name, err)
	}
	// A cancelled ctx aborts both directions, so nothing below blocks.
	stop := context.AfterFunc(ctx, func() {
		s.CancelWrite(transport.CodeCancelled)
		s.CancelRead(transport.CodeCancelled)
	})
	defer stop()
	if _, err := s.WriteContext(ctx, hdr); err != nil {
		return res, sendErr(name, err)
	}
	sum := sha256.New()
	buf := make([]byte, copyBufSize)
	lr := io.LimitReader(r, int64(size))
	for {
		n, rerr := lr.Read(buf)
		if n > 0 {
			sum.Write(buf[:n])
			if _, err := s.WriteContext(ctx, buf[:n]); err != nil {
				return res, sendErr(name, err)
			}
			res.Bytes += uint64(n)
			if sent != nil {
				sent.Add(uint64(n))
			}
		}
		if rerr == io.EOF {
			break
		}
		if rerr != nil {
			s.CancelWrite(transport.CodeCancelled)
			return res, fmt.Errorf("read %s: %w", name, rerr)
		}
	}
	if res.Bytes != size {
		s.CancelWrite(transport.CodeCancelled)
		return res, fmt.Errorf("read %s: got %d bytes, expected %d (file changed while sending?)", name, res.Bytes, size)
	}
	copy(res.Digest[:], sum.Sum(nil))
	if err := s.Close(); err != nil {
		return res, sendErr(name, err)
	}
	var got [digestLen]byte
	if _, err := io.ReadFull(streamReader{ctx, s}, got[:]); err != nil {
		return res, sendErr(name, fmt.Errorf("read digest: %w", err))
	}
	res.Duration = time.Since(start)
	if got != res.Digest {
		return res, fmt.Errorf("send %s: SHA-256 mismatch: receiver has %x, sent %x", name, got, res.Digest)
	}
	return res, nil
}

// sendErr explains a failed send, translating a receiver's refusal code.
func sendErr(name string, err error) error {
	var se *transport.StreamError
	if errors.As(err, &se) && se.Remote && se.Code < transport.CodeInternal && se.Code != transport.CodeCancelled {
		return fmt.Errorf("send %s: %s", name, xferCodeText(uint64(se.Code)))
	}
	if errors.Is(err, io.ErrUnexpectedEOF) {
		return fmt.Errorf("send %s: receiver closed the stream without a digest", name)
	}
	return fmt.Errorf("send %s: %w", name, err)
}
