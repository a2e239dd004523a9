package blast

import (
	"fmt"

	"github.com/flightline/flightline/bench/internal/peer"
)

// receiver is the server's bookkeeping of one blast: it verifies every
// data datagram against the pattern and counts each sequence number once.
// It does no I/O, so the accounting is testable on its own.
type receiver struct {
	pat  *peer.Pattern
	seed uint64
	plan plan
	sl   *sealer  // nil: plain datagrams
	seen []uint64 // bitmap of verified sequence numbers

	datagrams int64 // distinct verified data datagrams
	bytes     int64 // their payload bytes
	dups      int64 // verified datagrams whose sequence number was already seen
	corrupt   int64 // datagrams with a bad header, length or payload
	firstBad  error // what was wrong with the first corrupt one
}

func newReceiver(s *peer.Spec, sl *sealer) *receiver {
	p := newPlan(s.Bytes, sl.overhead())
	return &receiver{
		pat:  peer.NewPattern(s.Seed),
		seed: s.Seed,
		plan: p,
		sl:   sl,
		seen: make([]uint64, (p.count+63)/64),
	}
}

// handle accounts for one datagram and returns its kind and header value.
// A data datagram is counted only if its sequence number belongs to the run,
// its length is what the plan says and every payload byte matches the
// pattern; anything else that is not a well-formed control datagram is
// corrupt and comes back as kindInvalid.
func (r *receiver) handle(b []byte) (kind, uint64) {
	k, v := parseHeader(b, r.seed)
	switch k {
	case kindData:
		if v >= uint64(r.plan.count) {
			r.bad(fmt.Errorf("sequence number %d beyond the run's %d datagrams", v, r.plan.count))
			return kindInvalid, 0
		}
		payload, err := r.sl.open(b, v) // decrypted in place
		if err == nil {
			err = r.verify(v, payload)
		}
		if err != nil {
			r.bad(err)
			return kindInvalid, 0
		}
		word, bit := v/64, uint64(1)<<(v%64)
		if r.seen[word]&bit != 0 {
			r.dups++
			return k, v
		}
		r.seen[word] |= bit
		r.datagrams++
		r.bytes += int64(len(payload))
		return k, v
	case kindHello, kindEnd:
		if len(b) == headerLen {
			return k, v
		}
	}
	r.bad(fmt.Errorf("%d-byte datagram of kind %v is not something a client sends", len(b), k))
	return kindInvalid, 0
}

// verify checks data datagram seq's payload.
func (r *receiver) verify(seq uint64, payload []byte) error {
	if seq >= uint64(r.plan.count) {
		return fmt.Errorf("sequence number %d beyond the run's %d datagrams", seq, r.plan.count)
	}
	if want := r.plan.payload(int64(seq)); len(payload) != want {
		return fmt.Errorf("datagram %d carries %d payload bytes, want %d", seq, len(payload), want)
	}
	if err := r.pat.Verify(0, r.plan.offset(int64(seq)), payload); err != nil {
		return fmt.Errorf("datagram %d: %w", seq, err)
	}
	return nil
}

func (r *receiver) bad(err error) {
	r.corrupt++
	if r.firstBad == nil {
		r.firstBad = err
	}
}

// err reports corruption, which a veth must never produce: a blast that
// counted corrupt datagrams measured something other than the datapath.
func (r *receiver) err() error {
	if r.corrupt == 0 {
		return nil
	}
	return fmt.Errorf("%d corrupt datagrams, first: %w", r.corrupt, r.firstBad)
}
