package flight

import (
	"fmt"
	"strings"
	"testing"
)

// Every Ledger built with NewLedger in this test binary runs with Check and
// Strict: a double release anywhere in the tests panics at once.
func init() { forceTestChecks = true }

// verifyStructure walks every shard and checks the structural invariants the
// O(shards) checker relies on: the PN list is strictly ascending and doubly
// linked, the index holds exactly the listed records under their PNs, each
// record sits in the shard of its PN, and stream lists partition the records
// with correct byte sums. O(records); tests only.
func (t *Tracker) verifyStructure() error {
	for i := range t.shards {
		sh := &t.shards[i]
		sh.mu.Lock()
		err := t.verifyShardLocked(i, sh)
		sh.mu.Unlock()
		if err != nil {
			return fmt.Errorf("shard %d: %w", i, err)
		}
	}
	return nil
}

func (t *Tracker) verifyShardLocked(i int, sh *shard) error {
	n, bytes := 0, 0
	var prev *record
	for r := sh.head; r != nil; r = r.next {
		if r.prev != prev {
			return fmt.Errorf("pn %d: broken prev link", r.pn)
		}
		if prev != nil && prev.pn >= r.pn {
			return fmt.Errorf("pn list not ascending: %d then %d", prev.pn, r.pn)
		}
		if t.shardOf(r.pn) != i {
			return fmt.Errorf("pn %d in wrong shard", r.pn)
		}
		if sh.idx.get(r.pn) != r {
			return fmt.Errorf("pn %d missing from index", r.pn)
		}
		if r.sl == nil || r.sl.id != r.stream || sh.streams.get(r.stream) != r.sl {
			return fmt.Errorf("pn %d: bad stream head", r.pn)
		}
		n++
		bytes += r.size
		prev = r
	}
	if sh.tail != prev {
		return fmt.Errorf("tail mismatch")
	}
	if n != sh.n || n != sh.idx.n || bytes != sh.bytes {
		return fmt.Errorf("counts: list %d/%dB, shard %d/%dB, index %d", n, bytes, sh.n, sh.bytes, sh.idx.n)
	}
	sn, sb := 0, 0
	var err error
	sh.streams.each(func(id uint64, sl *streamList) {
		c, b := 0, 0
		var p *record
		for r := sl.head; r != nil; r = r.snext {
			if r.sprev != p || r.sl != sl || r.stream != id {
				err = fmt.Errorf("stream %d: broken list at pn %d", id, r.pn)
				return
			}
			c++
			b += r.size
			p = r
		}
		if sl.tail != p || c != sl.n || b != sl.bytes || c == 0 {
			err = fmt.Errorf("stream %d: list %d/%dB, head %d/%dB", id, c, b, sl.n, sl.bytes)
		}
		sn += c
		sb += b
	})
	if err != nil {
		return err
	}
	if sn != n || sb != bytes {
		return fmt.Errorf("stream lists hold %d/%dB, shard %d/%dB", sn, sb, n, bytes)
	}
	return nil
}

// requireSound checks the ledger's accounting and structure.
func requireSound(t testing.TB, l *Ledger) {
	t.Helper()
	if err := l.t.verifyStructure(); err != nil {
		t.Fatal(err)
	}
	func() {
		defer func() {
			if r := recover(); r != nil {
				t.Fatalf("checker: %v", r)
			}
		}()
		l.verify("test")
	}()
}

func eq[T comparable](t testing.TB, got, want T, what string) {
	t.Helper()
	if got != want {
		t.Fatalf("%s: got %v, want %v", what, got, want)
	}
}

// mustPanic runs fn and requires a panic whose message contains substr.
func mustPanic(t testing.TB, substr string, fn func()) {
	t.Helper()
	defer func() {
		t.Helper()
		r := recover()
		if r == nil {
			t.Fatalf("no panic, want one containing %q", substr)
		}
		if !strings.Contains(fmt.Sprint(r), substr) {
			t.Fatalf("panic %q does not contain %q", r, substr)
		}
	}()
	fn()
}

// send charges and tracks one packet.
func send(l *Ledger, pn uint64, stream StreamID, size int, at int64) {
	l.Charge(size)
	l.Track(Sent{PN: pn, Stream: stream, Size: size, SentAt: mt(at), Payload: payloadFor(pn, size)})
}

func payloadFor(pn uint64, size int) []byte {
	n := min(size, 64)
	p := make([]byte, n)
	for i := range p {
		p[i] = byte(pn) + byte(i)
	}
	return p
}
