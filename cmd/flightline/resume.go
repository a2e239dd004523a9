package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/flightline/flightline/transport"
)

// Resumable transfers (docs/protocol.md §15.1). A sender sets flagResume in
// the header; the receiver answers with an offer, the length of the partial
// file it holds for this sender key and name and the SHA-256 of those bytes;
// the sender answers with the offset it starts from: the offered length when
// the digest matches the same prefix of its file, else 0. The sender ends
// the data with the SHA-256 of the whole file, which the receiver checks
// before anything is renamed into place.
const (
	// flagResume asks the receiver for a resume offer.
	flagResume = 0x01
	// offerLen is the receiver's offer: uint64 length, then SHA-256.
	offerLen = 8 + digestLen
	// startLen is the sender's answer: uint64 offset.
	startLen = 8
	// partialPrefix starts the names of partial files. It begins with
	// tempPrefix, so a sender can never name (and so never overwrite or
	// read) one: sanitizeName refuses names with a leading dot.
	partialPrefix = tempPrefix + "partial-"
	// defaultKeepPartial is how long listen keeps a partial file after
	// its last write.
	defaultKeepPartial = 24 * time.Hour
)

// partialName is the file name of the partial that peer's transfer of name
// writes. It is a keyed digest of both, so a partial belongs to exactly one
// sender key: another key computes another name and can neither resume nor
// append to it. The name has a fixed length whatever the file name's, and
// says nothing about it.
func partialName(peer transport.PublicKey, name string) string {
	h := sha256.New()
	h.Write([]byte("flightline partial v1\x00"))
	h.Write(peer[:])
	h.Write([]byte(name))
	return partialPrefix + hex.EncodeToString(h.Sum(nil)[:16])
}

// partials serialises the transfers that use one partial file (a retry can
// arrive before the receiver noticed that the interrupted stream died) and
// keeps the expiry sweep away from files in use. The zero value is ready.
type partials struct {
	mu   sync.Mutex
	busy map[string]chan struct{} // path -> closed on release
}

// claim makes the caller the only user of the partial at path, waiting for
// a running transfer that holds it to end. release must be called once the
// file is closed (and removed, if it is to go).
func (p *partials) claim(ctx context.Context, path string) (release func(), err error) {
	for {
		p.mu.Lock()
		held, ok := p.busy[path]
		if !ok {
			if p.busy == nil {
				p.busy = map[string]chan struct{}{}
			}
			ch := make(chan struct{})
			p.busy[path] = ch
			p.mu.Unlock()
			return func() {
				p.mu.Lock()
				delete(p.busy, path)
				p.mu.Unlock()
				close(ch)
			}, nil
		}
		p.mu.Unlock()
		select {
		case <-held:
		case <-ctx.Done():
			return nil, fmt.Errorf("wait for the running transfer of the same file: %w", ctx.Err())
		}
	}
}

// expire removes the partial files in dir last written before cutoff,
// skipping those in use, and returns how many it removed. It holds the
// lock across each check and removal, so a transfer never claims a file
// that is being deleted under it.
func (p *partials) expire(dir string, cutoff time.Time) (int, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return 0, fmt.Errorf("expire partial files: %w", err)
	}
	removed := 0
	var errs []error
	for _, e := range entries {
		if !strings.HasPrefix(e.Name(), partialPrefix) || !e.Type().IsRegular() {
			continue
		}
		path := filepath.Join(dir, e.Name())
		p.mu.Lock()
		if _, busy := p.busy[path]; !busy {
			if st, err := os.Lstat(path); err == nil && st.ModTime().Before(cutoff) {
				if err := os.Remove(path); err == nil {
					removed++
				} else if !errors.Is(err, fs.ErrNotExist) {
					errs = append(errs, err)
				}
			}
		}
		p.mu.Unlock()
	}
	return removed, errors.Join(errs...)
}

// expirePartials sweeps dir at once and then every interval until ctx ends,
// removing partial files older than keep; removals and errors are printed.
func expirePartials(ctx context.Context, p *partials, dir string, keep time.Duration, report func(format string, args ...any)) {
	interval := min(keep, time.Hour)
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		n, err := p.expire(dir, time.Now().Add(-keep))
		if n > 0 {
			report("removed %s older than %v (--keep-partial)", plural(n, "partial file"), keep)
		}
		if err != nil {
			report("%v", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
