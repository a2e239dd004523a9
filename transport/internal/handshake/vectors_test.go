package handshake

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/flightline/flightline/transport/internal/wire"
	"github.com/stretchr/testify/require"
)

// The test vectors live in docs/protocol.md, in fenced blocks tagged
// "vectors". This test takes every input from there, runs the real
// Initiator, Responder and Session on them and requires every output the
// document lists to match byte for byte, so the specification and the code
// cannot drift apart. With FLIGHTLINE_PRINT_VECTORS=1 it prints the computed
// outputs in the document's format instead of failing on them (for updating
// the document after a deliberate wire change).

// specPath is docs/protocol.md relative to this file.
func specPath(t *testing.T) string {
	_, file, _, ok := runtime.Caller(0)
	require.True(t, ok)
	return filepath.Join(filepath.Dir(file), "..", "..", "..", "docs", "protocol.md")
}

// vectorSet is the name -> bytes map of every vectors block, in document
// order.
type vectorSet struct {
	vals  map[string][]byte
	order []string
}

// parseVectors reads the ```vectors blocks of a Markdown document. An entry
// is "name:" at the start of a line followed by hex; indented lines that
// follow continue its hex. Spaces inside hex are ignored.
func parseVectors(doc []byte) (*vectorSet, error) {
	vs := &vectorSet{vals: make(map[string][]byte)}
	in := false
	cur := ""
	var hexBuf map[string]*strings.Builder = make(map[string]*strings.Builder)
	sc := bufio.NewScanner(bytes.NewReader(doc))
	line := 0
	for sc.Scan() {
		line++
		l := sc.Text()
		switch {
		case !in && strings.TrimSpace(l) == "```vectors":
			in, cur = true, ""
		case in && strings.TrimSpace(l) == "```":
			in = false
		case !in:
		case strings.TrimSpace(l) == "":
		case l[0] == ' ' || l[0] == '\t':
			if cur == "" {
				return nil, fmt.Errorf("line %d: continuation without an entry", line)
			}
			hexBuf[cur].WriteString(strings.ReplaceAll(strings.TrimSpace(l), " ", ""))
		default:
			name, rest, ok := strings.Cut(l, ":")
			if !ok {
				return nil, fmt.Errorf("line %d: want \"name: hex\", got %q", line, l)
			}
			name = strings.TrimSpace(name)
			if _, dup := hexBuf[name]; dup {
				return nil, fmt.Errorf("line %d: duplicate vector %q", line, name)
			}
			cur = name
			hexBuf[name] = &strings.Builder{}
			hexBuf[name].WriteString(strings.ReplaceAll(strings.TrimSpace(rest), " ", ""))
			vs.order = append(vs.order, name)
		}
	}
	if in {
		return nil, fmt.Errorf("unterminated vectors block")
	}
	for _, name := range vs.order {
		b, err := hex.DecodeString(hexBuf[name].String())
		if err != nil {
			return nil, fmt.Errorf("vector %q: %w", name, err)
		}
		vs.vals[name] = b
	}
	return vs, nil
}

// checker compares computed outputs against the document.
type checker struct {
	t       *testing.T
	vs      *vectorSet
	print   bool
	checked map[string]bool
	out     strings.Builder
}

func (c *checker) in(name string) []byte {
	c.t.Helper()
	b, ok := c.vs.vals[name]
	require.Truef(c.t, ok, "docs/protocol.md lacks input vector %q", name)
	c.checked[name] = true
	return b
}

func (c *checker) in32(name string) (k [32]byte) {
	c.t.Helper()
	b := c.in(name)
	require.Lenf(c.t, b, 32, "vector %q", name)
	copy(k[:], b)
	return k
}

func (c *checker) inUint64(name string) uint64 {
	c.t.Helper()
	b := c.in(name)
	require.Lenf(c.t, b, 8, "vector %q", name)
	return binary.BigEndian.Uint64(b)
}

// out requires the document's vector name to equal got.
func (c *checker) check(name string, got []byte) {
	c.t.Helper()
	c.checked[name] = true
	if c.print {
		fmt.Fprintf(&c.out, "%s:\n", name)
		for b := hex.EncodeToString(got); len(b) > 0; {
			n := min(len(b), 64)
			fmt.Fprintf(&c.out, "    %s\n", b[:n])
			b = b[n:]
		}
		return
	}
	want, ok := c.vs.vals[name]
	require.Truef(c.t, ok, "docs/protocol.md lacks output vector %q (computed %x)", name, got)
	require.Equalf(c.t, hex.EncodeToString(want), hex.EncodeToString(got), "vector %q", name)
}

// seqReader returns the concatenation of its parts, then fails: the test
// knows exactly how many random bytes each step draws.
type seqReader struct{ b []byte }

func (r *seqReader) Read(p []byte) (int, error) {
	if len(r.b) == 0 {
		return 0, fmt.Errorf("seqReader: out of bytes")
	}
	n := copy(p, r.b)
	r.b = r.b[n:]
	return n, nil
}

func seq(parts ...[]byte) *seqReader { return &seqReader{b: bytes.Join(parts, nil)} }

// timeOf turns a TAI64N label back into the wall clock time that produces it.
func timeOf(t *testing.T, ts []byte) time.Time {
	require.Len(t, ts, timestampSize)
	sec := binary.BigEndian.Uint64(ts[:8]) - tai64Base
	return time.Unix(int64(sec), int64(binary.BigEndian.Uint32(ts[8:])))
}

func TestVectors(t *testing.T) {
	doc, err := os.ReadFile(specPath(t))
	require.NoError(t, err)
	vs, err := parseVectors(doc)
	require.NoError(t, err)
	c := &checker{t: t, vs: vs, print: os.Getenv("FLIGHTLINE_PRINT_VECTORS") == "1", checked: make(map[string]bool)}

	iStatic := PrivateKey(c.in32("initiator_static_private"))
	rStatic := PrivateKey(c.in32("responder_static_private"))
	iEph := c.in("initiator_ephemeral_private")
	rEph := c.in("responder_ephemeral_private")
	iID := c.inUint64("initiator_conn_id")
	rID := c.inUint64("responder_conn_id")
	suite := c.in("suite")
	require.Len(t, suite, 1)
	ts := c.in("timestamp")
	iParams := c.in("initiator_params")
	rParams := c.in("responder_params")

	// Vector keys are given clamped, so generateKey's clamping is a no-op
	// and the vector means the same to implementations that clamp at use.
	for _, k := range [][]byte{iStatic[:], rStatic[:], iEph, rEph} {
		var p PrivateKey
		copy(p[:], k)
		p.clamp()
		require.Equal(t, k, p[:], "vector private keys must be clamped")
	}
	iPub, rPub := iStatic.Public(), rStatic.Public()
	c.check("initiator_static_public", iPub[:])
	c.check("responder_static_public", rPub[:])
	mk := mac1Key(&rPub)
	c.check("mac1_key_to_responder", mk[:])
	mk = mac1Key(&iPub)
	c.check("mac1_key_to_initiator", mk[:])

	now := timeOf(t, ts)
	var h, i2r, r2i [32]byte
	init, err := NewInitiator(InitiatorConfig{
		Static: iStatic, Remote: rPub, ConnID: iID, Suite: Suite(suite[0]), Payload: iParams,
		Now: func() time.Time { return now }, Rand: seq(iEph),
		onSplit: func(hh, a, b [32]byte) { h, i2r, r2i = hh, a, b },
	})
	require.NoError(t, err)
	start := newSymmetricState(init.Message()[:initPrefixLen], &rPub)
	c.check("initial_chaining_key", start.ck[:])
	c.check("initial_hash", start.h[:])
	c.check("initiation_hash", init.hs.h[:])
	c.check("initiation", init.Message())

	resp, err := NewResponder(ResponderConfig{Static: rStatic, Now: func() time.Time { return now }, Rand: seq(rEph)})
	require.NoError(t, err)
	src := netip.MustParseAddrPort("192.0.2.1:51820")
	rres, response, cookie, err := resp.Accept(init.Message(), src, rID, rParams)
	require.NoError(t, err)
	require.Nil(t, cookie)
	require.Equal(t, iParams, rres.Payload)
	require.Equal(t, iID, rres.PeerConnID)
	c.check("response", response)

	ires, err := init.Finish(response)
	require.NoError(t, err)
	require.Equal(t, rParams, ires.Payload)
	require.Equal(t, rID, ires.PeerConnID)
	c.check("handshake_hash", h[:])
	c.check("secret_i2r", i2r[:])
	c.check("secret_r2i", r2i[:])
	for _, d := range []struct {
		name   string
		secret *[32]byte
		ivs    [][ivSize]byte // the sessions that must hold this IV
	}{
		{"i2r", &i2r, [][ivSize]byte{ires.Session.Send.iv, rres.Session.Recv.iv}},
		{"r2i", &r2i, [][ivSize]byte{rres.Session.Send.iv, ires.Session.Recv.iv}},
	} {
		key, iv, err := deriveKeyIV(d.secret)
		require.NoError(t, err)
		c.check("key_"+d.name, key[:])
		c.check("iv_"+d.name, iv[:])
		for _, got := range d.ivs {
			require.Equal(t, iv, got)
		}
	}

	// One data packet each way, packet number 0, built with the real frame
	// and header encoders and sealed by the real sessions.
	plainI := wire.AppendStream(nil, 0, 0, []byte("hello"), true)
	plainI = wire.AppendPing(plainI)
	c.check("packet_i2r_plaintext", plainI)
	pktI := sealData(ires.Session.Send, rID, 0, plainI)
	c.check("packet_i2r", pktI)
	requireOpens(t, rres.Session.Recv, pktI, plainI)

	plainR := wire.AppendAck(nil, []wire.AckRange{{Largest: 0, Smallest: 0}}, 125)
	plainR = wire.AppendStream(plainR, 0, 0, []byte("world"), true)
	c.check("packet_r2i_plaintext", plainR)
	pktR := sealData(rres.Session.Send, iID, 0, plainR)
	c.check("packet_r2i", pktR)
	requireOpens(t, ires.Session.Recv, pktR, plainR)

	// The same first packet under the other suite (same secrets, key and IV).
	other := SuiteChaCha20Poly1305
	if Suite(suite[0]) == SuiteChaCha20Poly1305 {
		other = SuiteAESGCM
	}
	sOther, err := newSession(other, &i2r, &r2i)
	require.NoError(t, err)
	c.check(fmt.Sprintf("packet_i2r_suite%d", other), sealData(sOther.Send, rID, 0, plainI))

	// Key update (§5.3): each direction's secret ratchets with
	// HKDF-Expand(secret, "flightline v1 ku", 32); keys and IVs derive from
	// each generation as from the first. The initiator's packet is sealed
	// at generation 1 (phase bit 1, type 5) and 2 (phase 0 again), and the
	// responder's ratcheted openers accept both.
	iSend1, rRecv1 := ires.Session.SendSecret.Next(), rres.Session.RecvSecret.Next()
	require.Equal(t, iSend1.secret, rRecv1.secret)
	c.check("secret_i2r_1", iSend1.secret[:])
	key, iv, err := deriveKeyIV(&iSend1.secret)
	require.NoError(t, err)
	c.check("key_i2r_1", key[:])
	c.check("iv_i2r_1", iv[:])
	rSend1 := rres.Session.SendSecret.Next()
	require.Equal(t, rSend1.secret, ires.Session.RecvSecret.Next().secret)
	c.check("secret_r2i_1", rSend1.secret[:])
	key, iv, err = deriveKeyIV(&rSend1.secret)
	require.NoError(t, err)
	c.check("key_r2i_1", key[:])
	c.check("iv_r2i_1", iv[:])
	iSend2 := iSend1.Next()
	c.check("secret_i2r_2", iSend2.secret[:])
	for _, g := range []struct {
		name string
		sec  *TrafficSecret
		open *TrafficSecret
		pn   uint64
	}{
		{"packet_i2r_gen1", iSend1, rRecv1, 1000},
		{"packet_i2r_gen2", iSend2, rRecv1.Next(), 2000},
	} {
		b := wire.AppendDataHeader(nil, wire.DataHeader{ConnID: rID, PN: g.pn, KeyPhase: g.sec.Phase()})
		pkt := g.sec.NewSealer().Seal(b, b[:wire.DataHeaderLen], g.pn, plainI)
		c.check(g.name, pkt)
		requireOpens(t, g.open.NewOpener(), pkt, plainI)
		_, err := rres.Session.Recv.Open(nil, pkt[:wire.DataHeaderLen], g.pn, pkt[wire.DataHeaderLen:])
		require.ErrorIs(t, err, ErrDecrypt, "generation 0 does not open %s", g.name)
	}

	// Cookie round trip: the same initiation reaches a responder under load.
	cookieSecret := c.in("cookie_secret")
	cookieNonce := c.in("cookie_nonce")
	c.check("cookie_source", addrBytes(src))
	ck := cookieKey(&rPub)
	c.check("cookie_key", ck[:])
	loaded, err := NewResponder(ResponderConfig{
		Static: rStatic, Now: func() time.Time { return now }, UnderLoad: func() bool { return true },
		Rand: seq(cookieSecret, cookieNonce, rEph),
	})
	require.NoError(t, err)
	res, response2, reply, err := loaded.Accept(init.Message(), src, rID, rParams)
	require.NoError(t, err)
	require.Nil(t, res)
	require.Nil(t, response2)
	var secret [32]byte
	copy(secret[:], cookieSecret)
	cv := mac(secret[:], addrBytes(src))
	c.check("cookie", cv[:])
	c.check("cookie_reply", reply)

	// A fresh initiator (the first one finished) repeats the first attempt,
	// takes the cookie and retries with the second ephemeral key and
	// timestamp: that initiation carries mac2 and is accepted under load.
	ts2 := c.in("timestamp_2")
	iEph2 := c.in("initiator_ephemeral_private_2")
	clock := now
	init2, err := NewInitiator(InitiatorConfig{
		Static: iStatic, Remote: rPub, ConnID: iID, Suite: Suite(suite[0]), Payload: iParams,
		Now: func() time.Time { return clock }, Rand: seq(iEph, iEph2),
	})
	require.NoError(t, err)
	require.Equal(t, init.Message(), init2.Message())
	require.NoError(t, init2.HandleCookie(reply))
	clock = timeOf(t, ts2)
	retry, err := init2.Retry()
	require.NoError(t, err)
	c.check("initiation_2", retry)
	res, response2, reply, err = loaded.Accept(retry, src, rID, rParams)
	require.NoError(t, err)
	require.Nil(t, reply)
	require.NotNil(t, res)
	_, err = init2.Finish(response2)
	require.NoError(t, err)

	if c.print {
		t.Logf("computed vectors:\n%s", c.out.String())
		return
	}
	// Every vector in the document is an input or a checked output.
	var unused []string
	for _, name := range vs.order {
		if !c.checked[name] {
			unused = append(unused, name)
		}
	}
	slices.Sort(unused)
	require.Empty(t, unused, "vectors in docs/protocol.md that no test checks")
}

func sealData(s *Sealer, connID, pn uint64, plain []byte) []byte {
	b := wire.AppendDataHeader(nil, wire.DataHeader{ConnID: connID, PN: pn})
	return s.Seal(b, b[:wire.DataHeaderLen], pn, plain)
}

func requireOpens(t *testing.T, o *Opener, pkt, want []byte) {
	t.Helper()
	hdr, err := wire.ParseDataHeader(pkt)
	require.NoError(t, err)
	got, err := o.Open(nil, pkt[:wire.DataHeaderLen], hdr.PN, pkt[wire.DataHeaderLen:])
	require.NoError(t, err)
	require.Equal(t, want, got)
}

// TestParseVectors checks the block parser itself, so a formatting slip in
// the document is an error rather than a silently skipped vector.
func TestParseVectors(t *testing.T) {
	vs, err := parseVectors([]byte("text\n```vectors\na: 0102\n    0304\nb:\n    ff\n```\n```\nc: 00\n```\n"))
	require.NoError(t, err)
	require.Equal(t, []string{"a", "b"}, vs.order)
	require.Equal(t, []byte{1, 2, 3, 4}, vs.vals["a"])
	require.Equal(t, []byte{0xff}, vs.vals["b"])
	_, err = parseVectors([]byte("```vectors\na: 0g\n```\n"))
	require.Error(t, err)
	_, err = parseVectors([]byte("```vectors\na: 00\na: 01\n```\n"))
	require.Error(t, err)
	_, err = parseVectors([]byte("```vectors\na: 00\n"))
	require.Error(t, err)
}
