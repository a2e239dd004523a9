package main

// An independent flightline client, written only from docs/protocol.md:
// its own Noise IK, key derivation, packet protection, frame codec, ACKs,
// retransmission and FLXF sender, using x/crypto and the standard library
// directly (package main cannot import transport/internal, so nothing of the
// implementation is reused). TestSpecClientVectors checks it against the
// spec's test vectors; TestSpecClientSendsFile uses it to send a file to an
// unmodified `flightline listen` over loopback UDP and checks the digest.
// If either fails after a wire change, the spec (or the change) is wrong.

import (
	"bufio"
	"bytes"
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"golang.org/x/crypto/blake2s"
	"golang.org/x/crypto/chacha20poly1305"
	"golang.org/x/crypto/curve25519"
)

// --- §1 conventions and §4.2 primitives ---

func scHash(parts ...[]byte) []byte {
	h, _ := blake2s.New256(nil)
	for _, p := range parts {
		h.Write(p)
	}
	return h.Sum(nil)
}

func scHMAC(key []byte, parts ...[]byte) []byte {
	m := hmac.New(func() hash.Hash { h, _ := blake2s.New256(nil); return h }, key)
	for _, p := range parts {
		m.Write(p)
	}
	return m.Sum(nil)
}

// scMAC is keyed BLAKE2s-128.
func scMAC(key []byte, msg []byte) []byte {
	h, err := blake2s.New128(key)
	if err != nil {
		panic(err)
	}
	h.Write(msg)
	return h.Sum(nil)
}

// scHKDF2 is the Noise HKDF with two outputs, as §4.2 writes it.
func scHKDF2(ck, ikm []byte) (a, b []byte) {
	temp := scHMAC(ck, ikm)
	a = scHMAC(temp, []byte{1})
	b = scHMAC(temp, a, []byte{2})
	return a, b
}

func scClamp(k []byte) { k[0] &= 248; k[31] = k[31]&127 | 64 }

func scPublic(priv []byte) []byte {
	p, err := curve25519.X25519(priv, curve25519.Basepoint)
	if err != nil {
		panic(err)
	}
	return p
}

func scVarint(b []byte, v uint64) []byte {
	switch {
	case v < 1<<6:
		return append(b, byte(v))
	case v < 1<<14:
		return binary.BigEndian.AppendUint16(b, uint16(v)|0x4000)
	case v < 1<<30:
		return binary.BigEndian.AppendUint32(b, uint32(v)|0x80000000)
	}
	return binary.BigEndian.AppendUint64(b, v|0xc000000000000000)
}

func scReadVarint(b []byte) (uint64, []byte, error) {
	if len(b) == 0 {
		return 0, nil, errors.New("truncated varint")
	}
	n := 1 << (b[0] >> 6)
	if len(b) < n {
		return 0, nil, errors.New("truncated varint")
	}
	v := uint64(b[0] & 0x3f)
	for _, c := range b[1:n] {
		v = v<<8 | uint64(c)
	}
	return v, b[n:], nil
}

// --- §4 handshake ---

type scNoise struct{ ck, h, k []byte }

func (s *scNoise) mixHash(d ...[]byte) { s.h = scHash(append([][]byte{s.h}, d...)...) }
func (s *scNoise) mixDH(priv, pub []byte) error {
	shared, err := curve25519.X25519(priv, pub)
	if err != nil {
		return err
	}
	s.ck, s.k = scHKDF2(s.ck, shared)
	return nil
}
func (s *scNoise) encrypt(p []byte) []byte {
	a, _ := chacha20poly1305.New(s.k)
	c := a.Seal(nil, make([]byte, 12), p, s.h)
	s.mixHash(c)
	return c
}
func (s *scNoise) decrypt(c []byte) ([]byte, error) {
	a, _ := chacha20poly1305.New(s.k)
	p, err := a.Open(nil, make([]byte, 12), c, s.h)
	if err != nil {
		return nil, err
	}
	s.mixHash(c)
	return p, nil
}

// scInitiator is one handshake attempt.
type scInitiator struct {
	static, pub, rs, eph []byte
	connID               uint64
	noise                scNoise
	msg                  []byte
}

func scNewInitiation(static, rs, eph []byte, connID uint64, ts []byte, suite byte, params []byte) *scInitiator {
	i := &scInitiator{static: static, pub: scPublic(static), rs: rs, eph: eph, connID: connID}
	msg := []byte{1, 0, 0, 0}
	msg = binary.BigEndian.AppendUint64(msg, connID)
	ck := scHash([]byte("Noise_IK_25519_ChaChaPoly_BLAKE2s"))
	n := &i.noise
	n.ck, n.h = ck, ck
	n.mixHash([]byte("flightline v1"), msg[:12])
	n.mixHash(rs)
	ePub := scPublic(eph)
	msg = append(msg, ePub...)
	n.mixHash(ePub)
	if err := n.mixDH(eph, rs); err != nil {
		panic(err)
	}
	msg = append(msg, n.encrypt(i.pub)...)
	if err := n.mixDH(static, rs); err != nil {
		panic(err)
	}
	plain := append(slices.Clone(ts), suite)
	plain = binary.BigEndian.AppendUint16(plain, uint16(len(params)))
	plain = append(plain, params...)
	msg = append(msg, n.encrypt(plain)...)
	msg = append(msg, scMAC(scHash([]byte("mac1----"), rs), msg)...)
	msg = append(msg, make([]byte, 16)...) // no cookie
	i.msg = msg
	return i
}

type scSession struct {
	send, recv           cipher.AEAD
	sendIV, recvIV       []byte
	peerID               uint64
	peerParams           [5]uint64
	i2rSecret, r2iSecret []byte
}

// finish processes a Response (§4.4) and derives the session (§5.1).
func (i *scInitiator) finish(resp []byte, suite byte) (*scSession, error) {
	if len(resp) < 102 || len(resp) > 358 || resp[0] != 2 || resp[1]|resp[2]|resp[3] != 0 {
		return nil, errors.New("not a response")
	}
	if binary.BigEndian.Uint64(resp[12:]) != i.connID {
		return nil, errors.New("response for another connection")
	}
	L := len(resp)
	if !hmac.Equal(resp[L-32:L-16], scMAC(scHash([]byte("mac1----"), i.pub), resp[:L-32])) {
		return nil, errors.New("response mac1")
	}
	n := i.noise // copy
	n.mixHash(resp[:20])
	re := resp[20:52]
	n.mixHash(re)
	if err := n.mixDH(i.eph, re); err != nil {
		return nil, err
	}
	if err := n.mixDH(i.static, re); err != nil {
		return nil, err
	}
	plain, err := n.decrypt(resp[52 : L-32])
	if err != nil {
		return nil, fmt.Errorf("response payload: %w", err)
	}
	if len(plain) < 2 || int(binary.BigEndian.Uint16(plain)) != len(plain)-2 {
		return nil, errors.New("response payload length")
	}
	s := &scSession{peerID: binary.BigEndian.Uint64(resp[4:])}
	rest := plain[2:]
	for k := range s.peerParams {
		if s.peerParams[k], rest, err = scReadVarint(rest); err != nil {
			return nil, fmt.Errorf("transport parameters: %w", err)
		}
	}
	s.i2rSecret, s.r2iSecret = scHKDF2(n.ck, nil)
	var sendKey, recvKey []byte
	sendKey, s.sendIV = scKeyIV(s.i2rSecret)
	recvKey, s.recvIV = scKeyIV(s.r2iSecret)
	s.send, s.recv = scAEAD(suite, sendKey), scAEAD(suite, recvKey)
	return s, nil
}

// scKeyIV is §5.1: HKDF-Expand with one output block each.
func scKeyIV(secret []byte) (key, iv []byte) {
	return scHMAC(secret, []byte("flightline v1 key"), []byte{1}), scHMAC(secret, []byte("flightline v1 iv"), []byte{1})[:12]
}

func scAEAD(suite byte, key []byte) cipher.AEAD {
	if suite == 2 {
		a, _ := chacha20poly1305.New(key)
		return a
	}
	b, _ := aes.NewCipher(key)
	a, _ := cipher.NewGCM(b)
	return a
}

func scNonce(iv []byte, pn uint64) []byte {
	n := slices.Clone(iv)
	binary.BigEndian.PutUint64(n[4:], binary.BigEndian.Uint64(n[4:])^pn)
	return n
}

func (s *scSession) seal(pn uint64, frames []byte) []byte {
	hdr := []byte{4}
	hdr = binary.BigEndian.AppendUint64(hdr, s.peerID)
	hdr = binary.BigEndian.AppendUint64(hdr, pn)
	return s.send.Seal(hdr, scNonce(s.sendIV, pn), frames, hdr)
}

func (s *scSession) open(pkt []byte, ourID uint64) (uint64, []byte, error) {
	if len(pkt) < 33 || pkt[0] != 4 || binary.BigEndian.Uint64(pkt[1:]) != ourID {
		return 0, nil, errors.New("not a data packet for us")
	}
	pn := binary.BigEndian.Uint64(pkt[9:])
	if pn > 1<<62-1 {
		return 0, nil, errors.New("packet number out of range")
	}
	p, err := s.recv.Open(nil, scNonce(s.recvIV, pn), pkt[17:], pkt[:17])
	return pn, p, err
}

// --- §8 frames (the subset a file sender meets, all parsed) ---

type scFrame struct {
	typ                byte
	id, off, max, code uint64
	data               []byte
	fin                bool
	acked              [][2]uint64 // [smallest, largest]
}

func scParseFrames(b []byte) ([]scFrame, error) {
	var out []scFrame
	var err error
	v := func() uint64 {
		var x uint64
		if err == nil {
			x, b, err = scReadVarint(b)
		}
		return x
	}
	for len(b) > 0 {
		t := b[0]
		b = b[1:]
		f := scFrame{typ: t}
		switch {
		case t == 0x00, t == 0x01:
		case t == 0x02:
			largest, _, count, first := v(), v(), v(), v()
			if err == nil && first > largest {
				return nil, errors.New("ACK first range")
			}
			hi, lo := largest, largest-first
			f.acked = append(f.acked, [2]uint64{lo, hi})
			for range count {
				gap, n := v(), v()
				if err != nil || lo < gap+2 || lo-gap-2 < n {
					return nil, errors.New("bad ACK ranges")
				}
				hi = lo - gap - 2
				lo = hi - n
				f.acked = append(f.acked, [2]uint64{lo, hi})
			}
		case t == 0x04:
			f.id, f.code, f.max = v(), v(), v()
		case t == 0x05:
			f.id, f.code = v(), v()
		case t >= 0x08 && t <= 0x0f:
			f.id = v()
			if t&4 != 0 {
				f.off = v()
			}
			n := uint64(len(b))
			if t&2 != 0 {
				n = v()
			}
			if err == nil && n > uint64(len(b)) {
				err = errors.New("STREAM data truncated")
			}
			if err == nil {
				f.data, b = b[:n], b[n:]
			}
			f.fin = t&1 != 0
		case t == 0x10, t == 0x12, t == 0x14:
			f.max = v()
		case t == 0x11, t == 0x15:
			f.id, f.max = v(), v()
		case t == 0x1a, t == 0x1b: // PATH_CHALLENGE, PATH_RESPONSE (§8.11)
			if len(b) < 8 {
				return nil, errors.New("path data truncated")
			}
			f.data, b = b[:8], b[8:]
		case t == 0x1c, t == 0x30:
			if t == 0x1c {
				f.code = v()
			}
			n := v()
			if err == nil && n > uint64(len(b)) {
				err = errors.New("length past payload")
			}
			if err == nil {
				f.data, b = b[:n], b[n:]
			}
		default:
			return nil, fmt.Errorf("unknown frame type %#x", t)
		}
		if err != nil {
			return nil, err
		}
		out = append(out, f)
	}
	return out, nil
}

func scStream(b []byte, id, off uint64, data []byte, fin bool) []byte {
	t := byte(0x0a) // LEN
	if off > 0 {
		t |= 4
	}
	if fin {
		t |= 1
	}
	b = scVarint(append(b, t), id)
	if off > 0 {
		b = scVarint(b, off)
	}
	return append(scVarint(b, uint64(len(data))), data...)
}

// scAck encodes the received packet numbers as an ACK frame (§8.3).
func scAck(b []byte, got map[uint64]bool) []byte {
	pns := make([]uint64, 0, len(got))
	for pn := range got {
		pns = append(pns, pn)
	}
	slices.Sort(pns)
	slices.Reverse(pns)
	var ranges [][2]uint64 // [largest, smallest], descending
	for _, pn := range pns {
		if n := len(ranges); n > 0 && ranges[n-1][1] == pn+1 {
			ranges[n-1][1] = pn
			continue
		}
		ranges = append(ranges, [2]uint64{pn, pn})
	}
	ranges = ranges[:min(len(ranges), 64)]
	b = scVarint(append(b, 0x02), ranges[0][0])
	b = scVarint(b, 0)
	b = scVarint(b, uint64(len(ranges)-1))
	b = scVarint(b, ranges[0][0]-ranges[0][1])
	for i := 1; i < len(ranges); i++ {
		b = scVarint(b, ranges[i-1][1]-ranges[i][0]-2)
		b = scVarint(b, ranges[i][0]-ranges[i][1])
	}
	return b
}

// --- the vectors of §17, computed independently ---

func specVectors(t *testing.T) map[string][]byte {
	doc, err := os.ReadFile(filepath.Join("..", "..", "docs", "protocol.md"))
	require.NoError(t, err)
	vals := map[string][]byte{}
	in, cur := false, ""
	hexes := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(doc))
	for sc.Scan() {
		l := sc.Text()
		switch {
		case strings.TrimSpace(l) == "```vectors":
			in = true
		case in && strings.TrimSpace(l) == "```":
			in = false
		case !in || strings.TrimSpace(l) == "":
		case l[0] == ' ':
			hexes[cur] += strings.TrimSpace(l)
		default:
			name, rest, _ := strings.Cut(l, ":")
			cur = name
			hexes[cur] = strings.TrimSpace(rest)
		}
	}
	for k, h := range hexes {
		vals[k], err = hex.DecodeString(h)
		require.NoError(t, err, k)
	}
	return vals
}

func TestSpecClientVectors(t *testing.T) {
	v := specVectors(t)
	iStatic, rStatic := v["initiator_static_private"], v["responder_static_private"]
	rs := scPublic(rStatic)
	require.Equal(t, v["responder_static_public"], rs)
	require.Equal(t, v["initiator_static_public"], scPublic(iStatic))
	cid := binary.BigEndian.Uint64(v["initiator_conn_id"])
	suite := v["suite"][0]
	init := scNewInitiation(iStatic, rs, v["initiator_ephemeral_private"], cid, v["timestamp"], suite, v["initiator_params"])
	require.Equal(t, hex.EncodeToString(v["initiation"]), hex.EncodeToString(init.msg))
	sess, err := init.finish(v["response"], suite)
	require.NoError(t, err)
	require.Equal(t, v["secret_i2r"], sess.i2rSecret)
	require.Equal(t, v["secret_r2i"], sess.r2iSecret)
	for _, d := range []struct {
		name   string
		secret []byte
	}{{"i2r", sess.i2rSecret}, {"r2i", sess.r2iSecret}} {
		k, iv := scKeyIV(d.secret)
		require.Equal(t, v["key_"+d.name], k)
		require.Equal(t, v["iv_"+d.name], iv)
	}
	require.Equal(t, binary.BigEndian.Uint64(v["responder_conn_id"]), sess.peerID)
	var wantParams [5]uint64
	rest := v["responder_params"]
	for k := range wantParams {
		wantParams[k], rest, err = scReadVarint(rest)
		require.NoError(t, err)
	}
	require.Equal(t, wantParams, sess.peerParams)
	require.Equal(t, [5]uint64{4 << 20, 16 << 20, 256, 30000, 1452}, wantParams)

	plain := scStream(nil, 0, 0, []byte("hello"), true)
	plain = append(plain, 0x01)
	require.Equal(t, v["packet_i2r_plaintext"], plain)
	require.Equal(t, hex.EncodeToString(v["packet_i2r"]), hex.EncodeToString(sess.seal(0, plain)))
	_, got, err := sess.open(v["packet_r2i"], cid)
	require.NoError(t, err)
	require.Equal(t, v["packet_r2i_plaintext"], got)
	frames, err := scParseFrames(got)
	require.NoError(t, err)
	require.Len(t, frames, 2)
	require.Equal(t, [][2]uint64{{0, 0}}, frames[0].acked)
	require.Equal(t, "world", string(frames[1].data))
	require.Equal(t, plain, frames2bytes(t, v["packet_i2r_plaintext"]))

	// Key update (§5.3): the ratchet, each generation's key and IV, and the
	// initiator's packet sealed at generations 1 (type 5) and 2 (type 4).
	ku := func(secret []byte) []byte { return scHMAC(secret, []byte("flightline v1 ku"), []byte{1}) }
	i2r1, r2i1 := ku(sess.i2rSecret), ku(sess.r2iSecret)
	require.Equal(t, v["secret_i2r_1"], i2r1)
	require.Equal(t, v["secret_r2i_1"], r2i1)
	i2r2 := ku(i2r1)
	require.Equal(t, v["secret_i2r_2"], i2r2)
	for _, d := range []struct {
		name   string
		secret []byte
	}{{"i2r_1", i2r1}, {"r2i_1", r2i1}} {
		k, iv := scKeyIV(d.secret)
		require.Equal(t, v["key_"+d.name], k)
		require.Equal(t, v["iv_"+d.name], iv)
	}
	for _, g := range []struct {
		name   string
		secret []byte
		typ    byte
		pn     uint64
	}{{"packet_i2r_gen1", i2r1, 5, 1000}, {"packet_i2r_gen2", i2r2, 4, 2000}} {
		k, iv := scKeyIV(g.secret)
		hdr := []byte{g.typ}
		hdr = binary.BigEndian.AppendUint64(hdr, sess.peerID)
		hdr = binary.BigEndian.AppendUint64(hdr, g.pn)
		require.Equal(t, hex.EncodeToString(v[g.name]), hex.EncodeToString(scAEAD(suite, k).Seal(hdr, scNonce(iv, g.pn), plain, hdr)))
	}

	// Cookie reply (§4.5) and the retried initiation with mac2 (§4.6).
	src := v["cookie_source"]
	require.Equal(t, []byte{192, 0, 2, 1, 0xca, 0x6c}, src) // 192.0.2.1:51820
	cookie := scMAC(v["cookie_secret"], src)
	require.Equal(t, v["cookie"], cookie)
	ckKey := scHash([]byte("cookie--"), rs)
	require.Equal(t, v["cookie_key"], ckKey)
	reply := v["cookie_reply"]
	require.Len(t, reply, 68)
	xa, _ := chacha20poly1305.NewX(ckKey)
	initMAC1 := init.msg[len(init.msg)-32 : len(init.msg)-16]
	opened, err := xa.Open(nil, reply[12:36], reply[36:], initMAC1)
	require.NoError(t, err)
	require.Equal(t, cookie, opened)
	require.Equal(t, v["cookie_nonce"], reply[12:36])
	init2 := scNewInitiation(iStatic, rs, v["initiator_ephemeral_private_2"], cid, v["timestamp_2"], suite, v["initiator_params"])
	m := init2.msg
	copy(m[len(m)-16:], scMAC(cookie, m[:len(m)-16]))
	require.Equal(t, hex.EncodeToString(v["initiation_2"]), hex.EncodeToString(m))
}

func frames2bytes(t *testing.T, b []byte) []byte {
	t.Helper()
	_, err := scParseFrames(b)
	require.NoError(t, err)
	return b
}

// --- a live transfer to `flightline listen` ---

type scPacket struct {
	off  uint64
	n    int
	fin  bool
	sent time.Time
}

func TestSpecClientSendsFile(t *testing.T) {
	dir := t.TempDir()
	keyPath, serverPub := writeKey(t, dir)
	out := filepath.Join(dir, "out")
	require.NoError(t, os.Mkdir(out, 0o755))
	addr, stop := startListener(t, "--addr", "127.0.0.1:0", "--key", keyPath, "--dir", out, "--datapath", "udp", "--allow-any")

	file := make([]byte, 300<<10)
	rand.Read(file)
	name := "from-spec-client.bin"
	stream := []byte("FLXF\x01\x00")
	stream = binary.BigEndian.AppendUint16(stream, uint16(len(name)))
	stream = append(stream, name...)
	stream = binary.BigEndian.AppendUint64(stream, uint64(len(file)))
	stream = append(stream, file...)

	udp, err := net.DialUDP("udp", nil, net.UDPAddrFromAddrPort(addr))
	require.NoError(t, err)
	defer udp.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	deadline, _ := ctx.Deadline()

	// §16 steps 1-4: keys, connection ID, Initiation, Response.
	static := make([]byte, 32)
	eph := make([]byte, 32)
	rand.Read(static)
	rand.Read(eph)
	scClamp(static)
	scClamp(eph)
	var idb [8]byte
	rand.Read(idb[:])
	idb[0] |= 1 // non-zero
	ourID := binary.BigEndian.Uint64(idb[:])
	now := time.Now()
	ts := binary.BigEndian.AppendUint64(nil, 1<<62+uint64(now.Unix()))
	ts = binary.BigEndian.AppendUint32(ts, uint32(now.Nanosecond()))
	var params []byte
	for _, p := range []uint64{1 << 20, 4 << 20, 16, 30000, 1452} {
		params = scVarint(params, p)
	}
	const suite = 2
	init := scNewInitiation(static, serverPub[:], eph, ourID, ts, suite, params)
	buf := make([]byte, 2048)
	var sess *scSession
	for sess == nil {
		require.True(t, time.Now().Before(deadline), "no handshake response")
		_, err := udp.Write(init.msg)
		require.NoError(t, err)
		udp.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
		n, err := udp.Read(buf)
		if err != nil {
			continue // resend (§4.8)
		}
		if buf[0] == 2 {
			sess, err = init.finish(buf[:n], suite)
			require.NoError(t, err)
		}
	}
	streamMax, connMax := sess.peerParams[0], sess.peerParams[1]
	maxPkt := min(int(sess.peerParams[4]), 1452)
	require.GreaterOrEqual(t, sess.peerParams[2], uint64(1), "may open stream 0")

	// §16 steps 5-8: data, ACKs, retransmission, the digest.
	var nextPN uint64
	inflight := map[uint64]scPacket{}
	var resend []scPacket
	got := map[uint64]bool{}
	ackOwed := false
	var sentOff uint64
	finSent := false
	answer := map[uint64][]byte{} // offset -> data on stream 0
	var answerFin = ^uint64(0)
	send := func(frames []byte) {
		_, err := udp.Write(sess.seal(nextPN, frames))
		require.NoError(t, err)
		nextPN++
	}
	send([]byte{0x01}) // PING first
	sendChunk := func(p scPacket) {
		var frames []byte
		if ackOwed && len(got) > 0 {
			frames = scAck(frames, got)
			ackOwed = false
		}
		frames = scStream(frames, 0, p.off, stream[p.off:p.off+uint64(p.n)], p.fin)
		p.sent = time.Now()
		inflight[nextPN] = p
		send(frames)
	}
	lastProgress := time.Now()
	for {
		require.True(t, time.Now().Before(deadline), "transfer did not finish: sent %d of %d, inflight %d", sentOff, len(stream), len(inflight))
		// Resend what was lost, then new data, within 32 packets in flight
		// and the flow-control limits.
		for len(resend) > 0 && len(inflight) < 32 {
			sendChunk(resend[0])
			resend = resend[1:]
		}
		for !finSent && len(inflight) < 32 {
			room := uint64(maxPkt - 17 - 16 - 1 - 8 - 8 - 4 - 80) // header, tag, frame header, an ACK
			n := min(room, uint64(len(stream))-sentOff, min(streamMax, connMax)-sentOff)
			if n == 0 && sentOff < uint64(len(stream)) {
				break // blocked by flow control until MAX_DATA / MAX_STREAM_DATA
			}
			p := scPacket{off: sentOff, n: int(n), fin: sentOff+n == uint64(len(stream))}
			sentOff += n
			finSent = p.fin
			sendChunk(p)
		}
		if ackOwed {
			send(scAck(nil, got))
			ackOwed = false
		}
		if answerFin != ^uint64(0) && uint64(len(joinAnswer(answer))) == answerFin && len(inflight) == 0 {
			break
		}
		udp.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
		n, err := udp.Read(buf)
		if err != nil {
			if time.Since(lastProgress) > 200*time.Millisecond && len(inflight) > 0 {
				for pn, p := range inflight { // presumed lost: resend under new numbers
					resend = append(resend, p)
					delete(inflight, pn)
				}
				slices.SortFunc(resend, func(a, b scPacket) int { return int(a.off) - int(b.off) })
				lastProgress = time.Now()
			}
			continue
		}
		pn, plain, err := sess.open(buf[:n], ourID)
		if err != nil || got[pn] {
			ackOwed = ackOwed || err == nil
			continue
		}
		frames, err := scParseFrames(plain)
		require.NoError(t, err)
		got[pn] = true
		for _, f := range frames {
			switch {
			case f.typ == 0x02:
				for _, r := range f.acked {
					for pn := range inflight {
						if pn >= r[0] && pn <= r[1] {
							delete(inflight, pn)
							lastProgress = time.Now()
						}
					}
				}
			case f.typ >= 0x08 && f.typ <= 0x0f:
				require.Zero(t, f.id, "the answer comes back on stream 0")
				answer[f.off] = f.data
				if f.fin {
					answerFin = f.off + uint64(len(f.data))
				}
			case f.typ == 0x10:
				connMax = max(connMax, f.max)
			case f.typ == 0x11 && f.id == 0:
				streamMax = max(streamMax, f.max)
			case f.typ == 0x04, f.typ == 0x05:
				t.Fatalf("listener reset the stream: code %d (%s)", f.code, xferCodeText(f.code))
			case f.typ == 0x1c:
				t.Fatalf("listener closed the connection: code %d: %s", f.code, f.data)
			}
			if f.typ != 0x00 && f.typ != 0x02 && f.typ != 0x1c {
				ackOwed = true
			}
		}
	}
	digest := joinAnswer(answer)
	want := sha256.Sum256(file)
	require.Equal(t, hex.EncodeToString(want[:]), hex.EncodeToString(digest), "digest from flightline listen")

	// Close (§13.2): ACK what we got, then CONNECTION_CLOSE code 0.
	closeFrame := scVarint(scVarint(append(scAck(nil, got), 0x1c), 0), 4)
	send(append(closeFrame, "done"...))

	written, err := os.ReadFile(filepath.Join(out, name))
	require.NoError(t, err)
	require.True(t, bytes.Equal(file, written))
	code, lout, lerr := stop()
	require.Equal(t, 0, code, lerr)
	require.Contains(t, lout, fmt.Sprintf("received %s: %d bytes", name, len(file)))
}

// joinAnswer concatenates the received answer segments in offset order
// (the listener sends the 32-byte digest, usually in one frame).
func joinAnswer(segs map[uint64][]byte) []byte {
	var out []byte
	for {
		d, ok := segs[uint64(len(out))]
		if !ok || (len(d) == 0 && len(out) > 0) {
			return out
		}
		if len(d) == 0 {
			return out
		}
		out = append(out, d...)
	}
}
