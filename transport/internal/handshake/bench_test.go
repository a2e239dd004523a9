package handshake

import "testing"

func BenchmarkSealOpen(b *testing.B) {
	for _, suite := range suites {
		b.Run(suite.String(), func(b *testing.B) {
			a, c, err := NewSessionPair(suite)
			if err != nil {
				b.Fatal(err)
			}
			hdr := make([]byte, 17)
			pt := make([]byte, 1400)
			ct := make([]byte, 0, len(pt)+Overhead)
			out := make([]byte, 0, len(pt))
			b.SetBytes(int64(len(pt)))
			b.ReportAllocs()
			var pn uint64
			for b.Loop() {
				pn++
				sealed := a.Send.Seal(ct[:0], hdr, pn, pt)
				if _, err := c.Recv.Open(out[:0], hdr, pn, sealed); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkHandshake measures one full handshake: NewInitiator (2 DH, one
// precomputed per initiator), Accept (4 DH) and Finish (2 DH).
func BenchmarkHandshake(b *testing.B) {
	iStatic, rStatic := mustKey(b, 1), mustKey(b, 2)
	r, err := NewResponder(ResponderConfig{Static: rStatic, ReplayCapacity: 1 << 20})
	if err != nil {
		b.Fatal(err)
	}
	payload := make([]byte, 64)
	b.ReportAllocs()
	var id uint64
	for b.Loop() {
		id++
		ini, err := NewInitiator(InitiatorConfig{Static: iStatic, Remote: rStatic.Public(), ConnID: id, Payload: payload})
		if err != nil {
			b.Fatal(err)
		}
		_, resp, _, err := r.Accept(ini.Message(), srcA, id, payload)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := ini.Finish(resp); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkAcceptJunk is the cost of dropping an initiation that fails mac1:
// what an attacker without the responder's public key can make us spend.
func BenchmarkAcceptJunk(b *testing.B) {
	r, err := NewResponder(ResponderConfig{Static: mustKey(b, 2)})
	if err != nil {
		b.Fatal(err)
	}
	msg := make([]byte, MinInitiationLen)
	msg[0] = TypeInitiation
	b.ReportAllocs()
	for b.Loop() {
		if _, _, _, err := r.Accept(msg, srcA, 1, nil); err == nil {
			b.Fatal("junk accepted")
		}
	}
}

// BenchmarkCookieReply is the cost of answering an initiation under load.
func BenchmarkCookieReply(b *testing.B) {
	f := &fixture{clock: newFakeClock(), iStatic: mustKey(b, 1), rStatic: mustKey(b, 2)}
	r, err := NewResponder(ResponderConfig{Static: f.rStatic, UnderLoad: func() bool { return true }})
	if err != nil {
		b.Fatal(err)
	}
	msg := f.initiator(b, SuiteAESGCM, nil).Message()
	b.ReportAllocs()
	for b.Loop() {
		if _, _, reply, err := r.Accept(msg, srcA, 1, nil); err != nil || reply == nil {
			b.Fatal("no cookie reply", err)
		}
	}
}

// BenchmarkKeyUpdate is the cost of one key update of one direction: the
// ratchet (one HMAC-BLAKE2s) and the next key and IV with their AEAD.
func BenchmarkKeyUpdate(b *testing.B) {
	for _, suite := range suites {
		b.Run(suite.String(), func(b *testing.B) {
			s, _, err := NewSessionPair(suite)
			if err != nil {
				b.Fatal(err)
			}
			sec := s.SendSecret
			b.ReportAllocs()
			for b.Loop() {
				next := sec.Next()
				sec.Erase()
				sec = next
				_ = sec.NewSealer()
			}
		})
	}
}
