package transport

// Connection-level fuzzing. FuzzConn drives a real server Conn over memlink
// with authenticated packets: the fuzzer's input is a small program whose
// records choose packet numbers (next, repeated, skipped ahead, or any 64-bit
// value), frame sequences and frame fields, plus what the server
// application does (accept and read, cancel reads, write, take messages).
// The packets are sealed with the client's session keys (forger); the real
// client conn is muted once the handshake is done, so the server hears only
// the program. The flight checker is on (Config.CheckInvariants panics on a
// violated flight-size invariant).
//
// Checked for every input: no panic anywhere in the process; the receive
// loop keeps up (a final MESSAGE is delivered, or the connection closed
// with an error, within a bound); every stream byte the application reads
// is the byte the program sent at that offset (the program's data at
// offset o of stream s is always connFuzzByte(s, o), so any reordering,
// overlap or duplicate must reassemble to exactly that); reassembly stays
// within its bound; no flight underflow.
//
// The seed corpus is testdata/fuzz/FuzzConn (written by
// TestConnFuzzSeedCorpus from connFuzzSeeds when FLIGHTLINE_WRITE_SEEDS=1);
// `go test` runs it, `make fuzz` fuzzes.

import (
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/flightline/flightline/transport/internal/wire"
	"github.com/flightline/flightline/transport/memlink"
	"github.com/stretchr/testify/require"
)

// Program opcodes (low 3 bits of the record's first byte).
const (
	opPktNext   = 0 // packet, next packet number in sequence
	opPktRepeat = 1 // packet, the previous packet number again
	opPktRaw    = 2 // packet, a 64-bit packet number from the program
	opPktSkip   = 3 // packet, skip 1..256 numbers ahead
	opAppRead   = 4 // server app: accept new streams, read what is readable
	opAppCancel = 5 // server app: CancelRead one stream
	opAppWrite  = 6 // server app: write to a stream, send a message
	opAppMsgs   = 7 // server app: take queued messages
)

// Frame kinds (a frame record's first byte mod 16).
const (
	fkPadding = iota
	fkPing
	fkStream
	fkAck
	fkReset
	fkStop
	fkMaxData
	fkMaxStreamData
	fkMaxStreams
	fkDataBlocked
	fkStreamDataBlocked
	fkMessage
	fkClose
	fkRaw
	fkStreamLong
	fkStreamFin
)

const (
	connFuzzMaxPackets  = 256 // per input: stays far below memlink's queue
	connFuzzMaxMessages = 256 // below the receiver's queue, so the final sync always fits
)

// connFuzzByte is the program's stream content: byte o of stream s.
func connFuzzByte(s, o uint64) byte { return byte(o*131 + s*7 + o>>8) }

// progReader reads a program; past its end every read yields zeros.
type progReader struct{ b []byte }

func (r *progReader) done() bool { return len(r.b) == 0 }

func (r *progReader) u8() byte {
	if len(r.b) == 0 {
		return 0
	}
	v := r.b[0]
	r.b = r.b[1:]
	return v
}

func (r *progReader) uN(n int) uint64 {
	var v uint64
	for range n {
		v = v<<8 | uint64(r.u8())
	}
	return v
}

func (r *progReader) bytes(n int) []byte {
	n = min(n, len(r.b))
	v := r.b[:n]
	r.b = r.b[n:]
	return v
}

// streamID picks a client-initiated stream id: mostly one of the first 16,
// sometimes any varint.
func (r *progReader) streamID() uint64 {
	b := r.u8()
	if b < 0xf0 {
		return uint64(b%16) * 2
	}
	return r.uN(8) & wire.MaxVarint
}

// offset picks a stream offset: mostly small, sometimes anything.
func (r *progReader) offset() uint64 {
	switch b := r.u8(); {
	case b < 0x80:
		return uint64(b)<<8 | uint64(r.u8())
	case b < 0xf0:
		return r.uN(3)
	default:
		return r.uN(8) & wire.MaxVarint
	}
}

// varint reads a value for a frame field: small, medium or any.
func (r *progReader) varint() uint64 {
	switch b := r.u8(); {
	case b < 0xc0:
		return uint64(b)
	case b < 0xf0:
		return r.uN(4)
	default:
		return r.uN(8) & wire.MaxVarint
	}
}

// connFuzzRun is one execution of a program against a fresh connection.
type connFuzzRun struct {
	t        *testing.T
	ctx      context.Context
	p        *pair
	f        *forger
	sc       *Conn
	lastPN   uint64
	packets  int
	messages int
	accepted map[uint64]*Stream
	readBuf  []byte
	// rawFrames is set once the program sent raw frame bytes: stream data
	// then need not be the program's content (connFuzzByte).
	rawFrames bool
}

func FuzzConn(f *testing.F) {
	f.Fuzz(func(t *testing.T, prog []byte) {
		runConnFuzz(t, prog)
	})
}

func runConnFuzz(t *testing.T, prog []byte) {
	a, b := memlink.NewPair(memlink.Config{Seed: 1})
	scfg, ccfg := testConfig(t), testConfig(t)
	quiet := func(string, ...any) {}
	scfg.Logf, ccfg.Logf = quiet, quiet
	// Small windows so programs reach the flow-control and reassembly
	// limits with few packets.
	scfg.StreamReceiveWindow, scfg.ConnectionReceiveWindow = 16<<10, 64<<10
	scfg.KeepAlive, ccfg.KeepAlive = -1, -1
	var forging atomic.Bool
	p := newPairOver(t, a, b, scfg, ccfg)
	// Mute the real client: from now on the server hears only the program.
	b.SetImpairment(memlink.Impairment{Drop: func([]byte) bool { return !forging.Load() }})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	run := &connFuzzRun{
		t: t, ctx: ctx, p: p, sc: p.serverConn,
		f:        newForger(t, p, b, a),
		accepted: make(map[uint64]*Stream),
		readBuf:  make([]byte, 4096),
	}
	run.f.writeHook = func(write func()) {
		forging.Store(true)
		write()
		forging.Store(false)
	}
	r := &progReader{b: prog}
	for !r.done() && run.packets < connFuzzMaxPackets {
		run.step(r)
	}
	run.finish()
}

func (run *connFuzzRun) step(r *progReader) {
	op := r.u8()
	switch op & 7 {
	case opPktNext, opPktRepeat, opPktRaw, opPktSkip:
		var pn uint64
		switch op & 7 {
		case opPktNext:
			pn = run.f.pn()
		case opPktRepeat:
			pn = run.lastPN
		case opPktRaw:
			pn = r.uN(8)
		case opPktSkip:
			pn = run.f.c.nextPN.Add(uint64(r.u8())+1) - 1
		}
		run.lastPN = pn
		plain := run.frames(r, int(r.u8()%16))
		run.f.write(run.f.seal(pn, plain))
		run.packets++
		// A peer that jumps its packet numbers ahead continues from there
		// (numbers below the replay window would be too old), saturating
		// so the sequence never wraps within a program. Past MaxPacketNumber
		// nothing it sends is accepted any more (finish knows).
		next := min(pn, math.MaxUint64-512) + 1
		for c := &run.f.c.nextPN; ; {
			cur := c.Load()
			if next <= cur || c.CompareAndSwap(cur, next) {
				break
			}
		}
	case opAppRead:
		run.acceptAndRead()
	case opAppCancel:
		if s := run.accepted[r.streamID()]; s != nil {
			s.CancelRead(StreamErrorCode(r.u8()))
		}
	case opAppWrite:
		n := int(r.u8()) * 8
		if s := run.accepted[r.streamID()]; s != nil {
			s.SetWriteDeadline(time.Now()) // never block the program
			s.Write(make([]byte, n))
		}
		if run.sc.SendMessage([]byte("m")) != nil {
			return
		}
	case opAppMsgs:
		for {
			if _, _, ok := run.sc.messages.tryPop(); !ok {
				break
			}
		}
	}
}

// frames builds a payload of n frames (PADDING if n is 0).
func (run *connFuzzRun) frames(r *progReader, n int) []byte {
	var b []byte
	for range n {
		b = run.frame(r, b)
	}
	if len(b) == 0 {
		b = append(b, 0)
	}
	if room := run.f.c.maxPlain(); len(b) > room {
		b = b[:room] // the tail frame is cut: malformed, which is fine
	}
	return b
}

func (run *connFuzzRun) frame(r *progReader, b []byte) []byte {
	k := r.u8() % 16
	switch k {
	case fkPadding:
		return append(b, 0)
	case fkPing:
		return wire.AppendPing(b)
	case fkStream, fkStreamLong, fkStreamFin:
		id, off := r.streamID(), r.offset()
		var n int
		if k == fkStreamLong {
			n = int(r.uN(2)) % 1200
		} else {
			n = int(r.u8())
		}
		fin := r.u8()&1 == 1 || k == fkStreamFin
		if off+uint64(n) > wire.MaxVarint {
			n = int(wire.MaxVarint - off)
		}
		data := make([]byte, n)
		for i := range data {
			data[i] = connFuzzByte(id, off+uint64(i))
		}
		return wire.AppendStream(b, id, off, data, fin)
	case fkAck:
		// Raw fields: the parser, not our encoder, judges them. The
		// largest is mostly a number the server did send.
		b = append(b, byte(wire.FrameAck))
		sent := run.sc.nextPN.Load()
		largest := r.varint()
		if sel := r.u8(); sel < 0xe0 && sent > 0 {
			largest = sent - 1 - min(largest, sent-1)
		}
		b = wire.AppendVarint(b, largest)
		b = wire.AppendVarint(b, r.varint()) // delay
		count := uint64(r.u8() % 8)
		if r.u8() == 0xff {
			count = r.varint()
		}
		b = wire.AppendVarint(b, count)
		b = wire.AppendVarint(b, r.varint()) // first range
		for range min(count, 8) {
			b = wire.AppendVarint(b, r.varint()) // gap
			b = wire.AppendVarint(b, r.varint()) // length
		}
		return b
	case fkReset:
		return wire.AppendResetStream(b, r.streamID(), r.varint(), r.offset())
	case fkStop:
		return wire.AppendStopSending(b, r.streamID(), r.varint())
	case fkMaxData:
		return wire.AppendMaxData(b, r.offset())
	case fkMaxStreamData:
		return wire.AppendMaxStreamData(b, r.streamID(), r.offset())
	case fkMaxStreams:
		return wire.AppendMaxStreams(b, r.varint())
	case fkDataBlocked:
		return wire.AppendDataBlocked(b, r.varint())
	case fkStreamDataBlocked:
		return wire.AppendStreamDataBlocked(b, r.streamID(), r.varint())
	case fkMessage:
		if run.messages >= connFuzzMaxMessages {
			return wire.AppendPing(b)
		}
		run.messages++
		return wire.AppendMessage(b, r.bytes(int(r.u8()%32)))
	case fkClose:
		if r.u8() != 0xc1 { // rare: ends the run early
			return wire.AppendPing(b)
		}
		return wire.AppendConnectionClose(b, r.varint(), "fuzz")
	case fkRaw:
		// Raw bytes can form a STREAM frame (with what follows) whose
		// data is not the program's content: no byte check in this run.
		run.rawFrames = true
		return append(b, r.bytes(int(r.u8()%48))...)
	}
	return b
}

// acceptAndRead accepts every stream the server conn has queued and reads
// whatever is readable, checking every byte against the program's content.
func (run *connFuzzRun) acceptAndRead() {
	for {
		select {
		case s := <-run.sc.acceptQ:
			run.accepted[s.ID()] = s
			continue
		default:
		}
		break
	}
	for id, s := range run.accepted {
		for {
			s.mu.Lock()
			off := s.recv.readOffset
			s.mu.Unlock()
			s.SetReadDeadline(time.Now()) // whatever is readable now, then ErrDeadline
			n, err := s.Read(run.readBuf)
			for i := range n {
				if want := connFuzzByte(id, off+uint64(i)); run.readBuf[i] != want && !run.rawFrames {
					run.t.Fatalf("stream %d offset %d: read %#x, the program sent %#x", id, off+uint64(i), run.readBuf[i], want)
				}
			}
			if err != nil || n == 0 {
				break
			}
		}
	}
}

// finish proves the receive loop handled everything (a final MESSAGE
// arrives, or the connection closed with an error), then checks the bounds.
func (run *connFuzzRun) finish() {
	t := run.t
	if run.f.c.nextPN.Load() > wire.MaxPacketNumber {
		// The program used up the packet-number space: nothing it sends
		// now may be accepted, so nothing can prove the loop keeps up.
		// Send a message anyway and give it a moment: delivered, it
		// would show a number above the ACK frame's range was accepted
		// (before the header check, the ACK owed for it panicked the
		// process in the varint encoder, within MaxAckDelay).
		late := []byte("flightline-fuzz-late")
		run.f.send(wire.AppendMessage(nil, late))
		ctx, cancel := context.WithTimeout(run.ctx, 200*time.Millisecond)
		defer cancel()
		for {
			m, err := run.sc.ReceiveMessage(ctx)
			if err != nil {
				break
			}
			if string(m) == string(late) {
				// Make the server send (its packet carries the ACK) before
				// failing, so the run shows what the acceptance leads to.
				if run.sc.SendMessage([]byte("s")) == nil {
					run.p.clientConn.ReceiveMessage(ctx)
				}
				t.Fatalf("packet number %d above MaxPacketNumber accepted", run.f.c.nextPN.Load()-1)
			}
		}
		run.checkBounds()
		return
	}
	tag := []byte("flightline-fuzz-sync")
	run.f.send(wire.AppendMessage(nil, tag))
	for {
		m, err := run.sc.ReceiveMessage(run.ctx)
		if err != nil {
			if errors.Is(err, context.DeadlineExceeded) {
				t.Fatalf("receive loop stalled: sync message not delivered and connection open (stats %+v)", run.sc.Stats())
			}
			break // closed: by a protocol error, the program's CONNECTION_CLOSE or an idle timeout
		}
		if string(m) == string(tag) {
			break
		}
	}
	run.acceptAndRead()
	run.checkBounds()
}

// checkBounds checks reassembly and flight accounting.
func (run *connFuzzRun) checkBounds() {
	t := run.t
	if peak, limit := run.sc.reasmPeak.Load(), maxReassemblyCharge(run.sc.cfg.ConnectionReceiveWindow); peak > limit+segCost {
		t.Fatalf("reassembly held %d B, bound %d B", peak, limit)
	}
	require.Zero(t, run.sc.Stats().FlightUnderflows)

	require.GreaterOrEqual(t, run.sc.ledger.Flight(), int64(0))
}

// connFuzzSeeds are hand-written programs covering every opcode and frame
// kind in plausible and contradictory orders.
func connFuzzSeeds() map[string][]byte {
	pkt := func(op byte, frames ...[]byte) []byte {
		b := []byte{op, byte(len(frames))}
		for _, f := range frames {
			b = append(b, f...)
		}
		return b
	}
	stream := func(kind, sel byte, off uint16, n byte, fin bool) []byte {
		f := byte(0)
		if fin {
			f = 1
		}
		return []byte{kind, sel, byte(off >> 8 & 0x7f), byte(off), n, f}
	}
	cat := func(parts ...[]byte) []byte {
		var b []byte
		for _, p := range parts {
			b = append(b, p...)
		}
		return b
	}
	read := []byte{opAppRead}
	seeds := map[string][]byte{
		"ping": pkt(opPktNext, []byte{fkPing}),
		"stream-in-order": cat(pkt(opPktNext, stream(fkStream, 0, 0, 100, false)),
			pkt(opPktNext, stream(fkStream, 0, 100, 100, true)), read),
		"stream-reordered": cat(pkt(opPktNext, stream(fkStream, 2, 200, 50, true)),
			pkt(opPktNext, stream(fkStream, 2, 100, 100, false), stream(fkStream, 2, 0, 120, false)), read),
		"stream-overlap-dup": cat(pkt(opPktNext, stream(fkStream, 4, 10, 200, false)),
			pkt(opPktRepeat, stream(fkStream, 4, 0, 50, false)),
			pkt(opPktNext, stream(fkStream, 4, 0, 255, false), stream(fkStream, 4, 5, 3, false)), read),
		"stream-descending-bytes": func() []byte {
			var b []byte
			for off := uint16(600); off > 0; off -= 40 {
				var fr [][]byte
				for k := range uint16(15) {
					fr = append(fr, stream(fkStream, 6, off-k*2, 1, false))
				}
				b = append(b, pkt(opPktNext, fr...)...)
			}
			return append(b, read...)
		}(),
		"final-size-conflict": cat(pkt(opPktNext, stream(fkStreamFin, 0, 0, 10, true)),
			pkt(opPktNext, stream(fkStream, 0, 20, 10, false))),
		"reset-after-data": cat(pkt(opPktNext, stream(fkStream, 8, 0, 200, false)),
			pkt(opPktNext, []byte{fkReset, 8, 5, 0x00, 0xc8}), read),
		"cancel-read-then-data": cat(pkt(opPktNext, stream(fkStream, 10, 0, 30, false)), read,
			[]byte{opAppCancel, 10, 3}, pkt(opPktNext, stream(fkStream, 10, 30, 200, true)), read),
		"stop-sending":     cat(pkt(opPktNext, stream(fkStream, 12, 0, 5, false)), read, []byte{opAppWrite, 20, 12}, pkt(opPktNext, []byte{fkStop, 12, 7})),
		"flow-control-max": cat(pkt(opPktNext, []byte{fkMaxData, 0x40, 0x10}, []byte{fkMaxStreamData, 0, 0x40, 0x10}, []byte{fkMaxStreams, 20})),
		"blocked":          pkt(opPktNext, []byte{fkDataBlocked, 5}, []byte{fkStreamDataBlocked, 2, 5}),
		"messages": cat(pkt(opPktNext, []byte{fkMessage, 3, 'a', 'b', 'c'}, []byte{fkMessage, 0}),
			[]byte{opAppMsgs}, pkt(opPktNext, []byte{fkMessage, 1, 'z'})),
		"ack-own-packets": cat(pkt(opPktNext, stream(fkStream, 0, 0, 10, false)), read, []byte{opAppWrite, 100, 0},
			pkt(opPktNext, []byte{fkAck, 0, 0, 3, 0, 0, 0}), pkt(opPktNext, []byte{fkAck, 0, 0, 10, 2, 0, 0, 1, 0, 1, 0})),
		"ack-unsent":    pkt(opPktNext, []byte{fkAck, 50, 0xe0, 0, 0, 0, 0}),
		"pn-skip":       cat([]byte{opPktSkip, 5, 1, fkPing}, []byte{opPktSkip, 200, 1, fkPing}, pkt(opPktNext, []byte{fkPing})),
		"pn-raw-low":    cat([]byte{opPktRaw, 0, 0, 0, 0, 0, 0, 0, 3, 1, fkPing}),
		"raw-frames":    pkt(opPktNext, []byte{fkRaw, 4, 0x1d, 0xff, 0x00, 0x01}),
		"close":         pkt(opPktNext, []byte{fkClose, 0xc1, 7}),
		"padding-only":  pkt(opPktNext),
		"stream-long":   cat(pkt(opPktNext, []byte{fkStreamLong, 0, 0, 0, 0x04, 0x00, 0}), read),
		"stream-far-id": pkt(opPktNext, stream(fkStream, 0xf5, 0, 1, false)),
	}
	return seeds
}

// TestConnFuzzSeedCorpus keeps testdata/fuzz/FuzzConn in step with
// connFuzzSeeds: with FLIGHTLINE_WRITE_SEEDS=1 it writes them, otherwise it
// checks they are there. (The files, like any crasher the fuzzer adds,
// run as FuzzConn's seed corpus in every `go test`.)
func TestConnFuzzSeedCorpus(t *testing.T) {
	dir := filepath.Join("testdata", "fuzz", "FuzzConn")
	for name, prog := range connFuzzSeeds() {
		path := filepath.Join(dir, "seed-"+name)
		content := fmt.Sprintf("go test fuzz v1\n[]byte(%q)\n", prog)
		if os.Getenv("FLIGHTLINE_WRITE_SEEDS") == "1" {
			require.NoError(t, os.MkdirAll(dir, 0o755))
			require.NoError(t, os.WriteFile(path, []byte(content), 0o644))
			continue
		}
		got, err := os.ReadFile(path)
		require.NoError(t, err, "run with FLIGHTLINE_WRITE_SEEDS=1 to write the seed corpus")
		require.Equal(t, content, string(got), "%s is stale: run with FLIGHTLINE_WRITE_SEEDS=1", path)
	}
}
