package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sync/atomic"
	"syscall"
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
	Resumed  uint64        // bytes of the file not sent because the receiver already held them
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
	// keepPartial > 0 writes each transfer to its sender's partial file
	// (resume.go) and keeps it on interruption so the sender can resume;
	// listen expires it keepPartial after its last write. 0: temporary
	// files, discarded on failure, and resume offers are always empty.
	keepPartial time.Duration
	partials    partials
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
	// keep: on failure, keep f as a partial file that a resumed transfer
	// can continue. Set only while f is this peer's partial and holds no
	// known-bad data.
	keep := false
	if rc.dir != "" {
		res.Path = filepath.Join(rc.dir, name)
		// Early check so a refused file costs no transfer; the commit
		// below re-checks atomically.
		if _, err := os.Lstat(res.Path); err == nil && !rc.force {
			return res, refuse(xferExists, fmt.Errorf("%s: %w", res.Path, fs.ErrExist))
		}
		if rc.keepPartial > 0 {
			var release func()
			f, release, err = rc.openPartial(ctx, peer, name)
			if err != nil {
				return res, err
			}
			// Registered before the cleanup below, so it runs after
			// it: the next user of the partial finds it closed (and
			// removed, if it went).
			defer release()
			keep = true
		} else {
			f, err = os.CreateTemp(rc.dir, tempPrefix+"*")
			if err != nil {
				return res, refuse(xferIO, fmt.Errorf("create temporary file: %w", err))
			}
		}
		defer func() {
			// Keep a partial only when it has data to resume from.
			if keep {
				if st, err := f.Stat(); err != nil || st.Size() == 0 {
					keep = false
				}
			}
			f.Close()
			if !keep {
				os.Remove(f.Name()) // no-op after a successful rename
			}
		}()
		dst = f
	}
	sum := sha256.New()
	var start uint64
	if h.Resume {
		if start, err = rc.negotiate(ctx, s, f, h.Size, sum); err != nil {
			return res, err
		}
		res.Resumed = start
	} else if f != nil && keep {
		// A plain transfer starts over: whatever partial there was goes.
		if err := f.Truncate(0); err != nil {
			return res, refuse(xferIO, fmt.Errorf("truncate %s: %w", f.Name(), err))
		}
	}
	buf := make([]byte, copyBufSize)
	n, err := io.CopyBuffer(io.MultiWriter(dst, sum), io.LimitReader(r, int64(h.Size-start)), buf)
	res.Bytes = uint64(n)
	if err != nil {
		var werr *fs.PathError
		if errors.As(err, &werr) {
			return res, refuse(xferIO, fmt.Errorf("write %s: %w", res.Path, err))
		}
		return res, fmt.Errorf("receive %s: %w", name, err)
	}
	if uint64(n) < h.Size-start {
		return res, refuse(xferShort, fmt.Errorf("receive %s: stream ended after %d of %d bytes", name, start+uint64(n), h.Size))
	}
	copy(res.Digest[:], sum.Sum(nil))
	if h.Resume {
		// The sender's digest of the whole file: the prefix on disk
		// is only used when the whole file matches.
		var theirs [digestLen]byte
		if _, err := io.ReadFull(r, theirs[:]); err != nil {
			if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
				return res, refuse(xferShort, fmt.Errorf("receive %s: stream ended before the sender's SHA-256", name))
			}
			return res, fmt.Errorf("receive %s: %w", name, err)
		}
		if theirs != res.Digest {
			keep = false
			return res, refuse(xferDigest, fmt.Errorf("receive %s: SHA-256 of the file is %x, the sender's is %x: discarded the partial file (resumed at %d)", name, res.Digest, theirs, start))
		}
	}
	// The sender must finish the stream right after the announced bytes.
	if m, err := r.Read(buf[:1]); m > 0 || !errors.Is(err, io.EOF) {
		if err != nil && !errors.Is(err, io.EOF) {
			return res, fmt.Errorf("receive %s: %w", name, err)
		}
		keep = false
		return res, refuse(xferShort, fmt.Errorf("receive %s: more than the announced %d bytes", name, h.Size))
	}
	if f != nil {
		keep = false // complete: committed, or refused because the name exists
		if err := rc.commit(f, res.Path); err != nil {
			return res, err
		}
	}
	return res, nil
}

// openPartial opens (creating it, mode 0600) peer's partial file for name,
// after waiting for any running transfer that uses it.
// release ends the claim; call it after closing (and maybe removing) f.
func (rc *receiver) openPartial(ctx context.Context, peer transport.PublicKey, name string) (f *os.File, release func(), err error) {
	path := filepath.Join(rc.dir, partialName(peer, name))
	release, err = rc.partials.claim(ctx, path)
	if err != nil {
		return nil, nil, err
	}
	// O_NOFOLLOW: a symlink planted under the name is refused, not
	// followed.
	f, err = os.OpenFile(path, os.O_RDWR|os.O_CREATE|syscall.O_NOFOLLOW, 0o600)
	if err == nil {
		var st os.FileInfo
		if st, err = f.Stat(); err == nil {
			// A hard link planted under the name would make us
			// overwrite the file it points to.
			if sys, ok := st.Sys().(*syscall.Stat_t); !st.Mode().IsRegular() || ok && sys.Nlink != 1 {
				err = fmt.Errorf("not a regular file with one link")
			}
		}
		if err != nil {
			f.Close()
		}
	}
	if err != nil {
		release()
		return nil, nil, refuse(xferIO, fmt.Errorf("open partial file %s: %w", path, err))
	}
	return f, release, nil
}

// negotiate runs the receiver's side of a resume: it offers the partial
// in f (nil: none), reads where the sender starts, and leaves f positioned
// there and sum holding the SHA-256 of the bytes before it.
func (rc *receiver) negotiate(ctx context.Context, s xferStream, f *os.File, size uint64, sum hash.Hash) (uint64, error) {
	var have uint64
	if f != nil {
		st, err := f.Stat()
		if err != nil {
			return 0, refuse(xferIO, fmt.Errorf("stat %s: %w", f.Name(), err))
		}
		// A partial longer than the file is from another version of
		// it: offer nothing.
		if uint64(st.Size()) <= size {
			have = uint64(st.Size())
		}
		if _, err := f.Seek(0, io.SeekStart); err != nil {
			return 0, refuse(xferIO, fmt.Errorf("seek %s: %w", f.Name(), err))
		}
		if m, err := io.CopyN(sum, f, int64(have)); err != nil {
			return 0, refuse(xferIO, fmt.Errorf("read partial file %s after %d of %d bytes: %w", f.Name(), m, have, err))
		}
	}
	offer := binary.BigEndian.AppendUint64(make([]byte, 0, offerLen), have)
	offer = sum.Sum(offer)
	if _, err := s.WriteContext(ctx, offer); err != nil {
		return 0, fmt.Errorf("send resume offer: %w", err)
	}
	var ans [startLen]byte
	if _, err := io.ReadFull(streamReader{ctx, s}, ans[:]); err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return 0, refuse(xferShort, fmt.Errorf("stream ended before the resume offset: %w", truncated(err)))
		}
		return 0, fmt.Errorf("read resume offset: %w", err)
	}
	start := binary.BigEndian.Uint64(ans[:])
	if start != have && start != 0 {
		return 0, refuse(xferBadHeader, fmt.Errorf("sender answered resume offset %d, offered %d (only that or 0 are valid)", start, have))
	}
	if start == 0 {
		// The sender's file differs from the partial: start over.
		sum.Reset()
	}
	if f != nil {
		// Cut what is not kept, so nothing beyond the bytes hashed can
		// end up in the file: the rest of a partial longer than the
		// file (offered as 0), or all of one the sender did not match.
		if err := f.Truncate(int64(start)); err != nil {
			return 0, refuse(xferIO, fmt.Errorf("truncate %s: %w", f.Name(), err))
		}
		if _, err := f.Seek(int64(start), io.SeekStart); err != nil {
			return 0, refuse(xferIO, fmt.Errorf("seek %s: %w", f.Name(), err))
		}
	}
	return start, nil
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
// receiver answers with. r must yield exactly size bytes; with resume it must
// be an io.ReadSeeker positioned at the file's start, and the transfer
// continues from the prefix the receiver holds when that prefix's SHA-256
// matches ours. sent counts payload bytes handed to the stream plus the
// bytes skipped by a resume, for progress display.
func sendOne(ctx context.Context, conn *transport.Conn, name string, size uint64, r io.Reader, sent *atomic.Uint64, resume bool) (result, error) {
	start := time.Now()
	res := result{Name: name}
	var rs io.ReadSeeker
	if resume {
		var ok bool
		if rs, ok = r.(io.ReadSeeker); !ok {
			return res, fmt.Errorf("send %s: resume needs a seekable file", name)
		}
	}
	hdr, err := encodeHeader(nil, header{Name: name, Size: size, Resume: resume})
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
	var from uint64
	if resume {
		if from, err = answerOffer(ctx, s, name, size, rs, sum); err != nil {
			return res, err
		}
		res.Resumed = from
		if sent != nil {
			sent.Add(from)
		}
	}
	buf := make([]byte, copyBufSize)
	lr := io.LimitReader(r, int64(size-from))
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
	if from+res.Bytes != size {
		s.CancelWrite(transport.CodeCancelled)
		return res, fmt.Errorf("read %s: got %d bytes, expected %d (file changed while sending?)", name, from+res.Bytes, size)
	}
	copy(res.Digest[:], sum.Sum(nil))
	if resume {
		// The whole file's digest, which the receiver checks before
		// it renames anything into place.
		if _, err := s.WriteContext(ctx, res.Digest[:]); err != nil {
			return res, sendErr(name, err)
		}
	}
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

// answerOffer runs the sender's side of a resume: it reads the receiver's
// offer, hashes the same prefix of rs, and answers with where the data
// starts: the offered length when the digests match, else 0. It leaves rs
// positioned there and sum holding the SHA-256 of the bytes before it.
func answerOffer(ctx context.Context, s *transport.Stream, name string, size uint64, rs io.ReadSeeker, sum hash.Hash) (uint64, error) {
	var offer [offerLen]byte
	if _, err := io.ReadFull(streamReader{ctx, s}, offer[:]); err != nil {
		var se *transport.StreamError
		if errors.As(err, &se) && se.Remote && se.Code == xferBadHeader {
			return 0, fmt.Errorf("send %s: receiver rejected the resume request (a receiver without resume support does; send without --resume)", name)
		}
		return 0, sendErr(name, fmt.Errorf("read resume offer: %w", err))
	}
	have := binary.BigEndian.Uint64(offer[:8])
	if have > size {
		s.CancelWrite(transport.CodeCancelled)
		s.CancelRead(transport.CodeCancelled)
		return 0, fmt.Errorf("send %s: receiver offered to resume at byte %d of a %d-byte file", name, have, size)
	}
	from := uint64(0)
	if m, err := io.CopyN(sum, rs, int64(have)); err != nil {
		s.CancelWrite(transport.CodeCancelled)
		return 0, fmt.Errorf("read %s: %d of the first %d bytes: %w", name, m, have, err)
	}
	if bytes.Equal(sum.Sum(nil), offer[8:]) {
		from = have
	} else {
		// The receiver's partial is not a prefix of this file (damaged,
		// or another version of it): start over.
		sum.Reset()
		if _, err := rs.Seek(0, io.SeekStart); err != nil {
			s.CancelWrite(transport.CodeCancelled)
			return 0, fmt.Errorf("seek %s: %w", name, err)
		}
	}
	if _, err := s.WriteContext(ctx, binary.BigEndian.AppendUint64(nil, from)); err != nil {
		return 0, sendErr(name, err)
	}
	return from, nil
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
