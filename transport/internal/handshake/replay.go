package handshake

// ReplayWindowSize is how far behind the highest packet number seen a
// packet may arrive and still be accepted.
const ReplayWindowSize = 2048

// The bitmap is a ring of 64-bit words. It needs one word more than the
// window: the oldest acceptable packet (top-2047) and top may sit in words
// 32 apart, i.e. 33 distinct words (RFC 6479, section 2).
const (
	replayWordBits = 64
	replayWords    = ReplayWindowSize/replayWordBits + 1
)

// ReplayWindow rejects duplicate and too-old packet numbers with a sliding
// bitmap (RFC 6479). The zero value is ready to use and accepts packet
// number 0 first. It is not safe for concurrent use; the receiving
// goroutine owns it.
//
// Use: Check before decrypting (cheap rejection of replays), Mark only after
// Opener.Open succeeded, so forged packets cannot move the window.
type ReplayWindow struct {
	top    uint64 // highest packet number marked
	bitmap [replayWords]uint64
}

// Check reports whether pn may be accepted: it is newer than anything seen,
// or inside the window and not seen yet.
func (w *ReplayWindow) Check(pn uint64) bool {
	if pn > w.top {
		return true
	}
	if w.top-pn >= ReplayWindowSize {
		return false
	}
	word := (pn / replayWordBits) % replayWords
	return w.bitmap[word]&(1<<(pn%replayWordBits)) == 0
}

// Mark records pn as received. Marking a packet number that Check would
// reject is a no-op.
func (w *ReplayWindow) Mark(pn uint64) {
	if pn > w.top {
		// Clear the words the window slides over. Words between the
		// old top word (exclusive) and the new one (inclusive) hold
		// only packet numbers that are now too old or not yet seen.
		cur, next := w.top/replayWordBits, pn/replayWordBits
		n := next - cur
		if n > replayWords {
			n = replayWords
		}
		for i := uint64(1); i <= n; i++ {
			w.bitmap[(cur+i)%replayWords] = 0
		}
		w.top = pn
	} else if w.top-pn >= ReplayWindowSize {
		return
	}
	w.bitmap[(pn/replayWordBits)%replayWords] |= 1 << (pn % replayWordBits)
}
