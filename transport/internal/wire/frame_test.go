package wire

import (
	"bytes"
	"fmt"
	"testing"
)

// encodeFrame encodes f with the matching Append function; it is the inverse
// of Parser.Next for every reported frame type.
func encodeFrame(b []byte, f *Frame) []byte {
	switch f.Type {
	case FramePing:
		return AppendPing(b)
	case FrameAck:
		return AppendAck(b, f.Ranges, f.AckDelay)
	case FrameResetStream:
		return AppendResetStream(b, f.StreamID, f.ErrorCode, f.FinalSize)
	case FrameStopSending:
		return AppendStopSending(b, f.StreamID, f.ErrorCode)
	case FrameStream:
		return AppendStream(b, f.StreamID, f.Offset, f.Data, f.Fin)
	case FrameMaxData:
		return AppendMaxData(b, f.Max)
	case FrameMaxStreamData:
		return AppendMaxStreamData(b, f.StreamID, f.Max)
	case FrameMaxStreams:
		return AppendMaxStreams(b, f.Max)
	case FrameDataBlocked:
		return AppendDataBlocked(b, f.Max)
	case FrameStreamDataBlocked:
		return AppendStreamDataBlocked(b, f.StreamID, f.Max)
	case FrameConnectionClose:
		return AppendConnectionClose(b, f.ErrorCode, string(f.Reason))
	case FrameMessage:
		return AppendMessage(b, f.Data)
	case FramePathChallenge:
		return AppendPathChallenge(b, f.PathData)
	case FramePathResponse:
		return AppendPathResponse(b, f.PathData)
	}
	panic(fmt.Sprintf("encodeFrame: unexpected type %v", f.Type))
}

// normalize returns a comparable copy of f: empty slices become nil and
// Ranges no longer alias parser storage.
func normalize(f Frame) Frame {
	if len(f.Data) == 0 {
		f.Data = nil
	} else {
		f.Data = bytes.Clone(f.Data)
	}
	if len(f.Reason) == 0 {
		f.Reason = nil
	} else {
		f.Reason = bytes.Clone(f.Reason)
	}
	if len(f.Ranges) == 0 {
		f.Ranges = nil
	} else {
		f.Ranges = append([]AckRange(nil), f.Ranges...)
	}
	return f
}

// parseAll parses every frame of payload.
func parseAll(payload []byte) ([]Frame, error) {
	var p Parser
	p.Reset(payload)
	var out []Frame
	for {
		var f Frame
		ok, err := p.Next(&f)
		if err != nil || !ok {
			return out, err
		}
		out = append(out, normalize(f))
	}
}

type frameCase struct {
	name string
	f    Frame
}

// frameCases covers every frame type with every varint boundary in every
// integer field.
func frameCases() []frameCase {
	var cs []frameCase
	add := func(name string, f Frame) { cs = append(cs, frameCase{name, normalize(f)}) }
	add("ping", Frame{Type: FramePing})
	add("path-challenge", Frame{Type: FramePathChallenge, PathData: [8]byte{1, 2, 3, 4, 5, 6, 7, 8}})
	add("path-response", Frame{Type: FramePathResponse, PathData: [8]byte{0xff, 0, 0xff, 0, 9, 9, 9, 9}})
	add("path-challenge/zero", Frame{Type: FramePathChallenge})
	add("stream/empty", Frame{Type: FrameStream})
	add("stream/fin-only", Frame{Type: FrameStream, StreamID: 4, Fin: true})
	add("message/empty", Frame{Type: FrameMessage})
	add("message/1200", Frame{Type: FrameMessage, Data: bytes.Repeat([]byte{0xab}, 1200)})
	add("close/no-reason", Frame{Type: FrameConnectionClose, ErrorCode: 7})
	add("stream/16384-bytes", Frame{Type: FrameStream, StreamID: 1, Offset: 1, Data: bytes.Repeat([]byte{1}, 16384)})
	for _, v := range boundaries {
		data := []byte("hello")
		if v > MaxVarint-uint64(len(data)) {
			data = nil // keep offset+length <= MaxVarint
		}
		add(fmt.Sprintf("ack/largest=%d", v), Frame{Type: FrameAck, AckDelay: 25, Ranges: []AckRange{{v, v}}})
		add(fmt.Sprintf("ack/first-range=%d", v), Frame{Type: FrameAck, Ranges: []AckRange{{0, v}}})
		add(fmt.Sprintf("ack/delay=%d", v), Frame{Type: FrameAck, AckDelay: v, Ranges: []AckRange{{3, 10}, {0, 1}}})
		add(fmt.Sprintf("reset/id=%d", v), Frame{Type: FrameResetStream, StreamID: v, ErrorCode: 1, FinalSize: 2})
		add(fmt.Sprintf("reset/code=%d", v), Frame{Type: FrameResetStream, StreamID: 1, ErrorCode: v, FinalSize: 2})
		add(fmt.Sprintf("reset/final=%d", v), Frame{Type: FrameResetStream, StreamID: 1, ErrorCode: 2, FinalSize: v})
		add(fmt.Sprintf("stop/id=%d", v), Frame{Type: FrameStopSending, StreamID: v, ErrorCode: 3})
		add(fmt.Sprintf("stop/code=%d", v), Frame{Type: FrameStopSending, StreamID: 3, ErrorCode: v})
		add(fmt.Sprintf("stream/id=%d", v), Frame{Type: FrameStream, StreamID: v, Offset: 9, Data: []byte("hello")})
		add(fmt.Sprintf("stream/offset=%d", v), Frame{Type: FrameStream, StreamID: 2, Offset: v, Data: data})
		add(fmt.Sprintf("stream/offset=%d/fin", v), Frame{Type: FrameStream, StreamID: 2, Offset: v, Data: data, Fin: true})
		add(fmt.Sprintf("max-data=%d", v), Frame{Type: FrameMaxData, Max: v})
		add(fmt.Sprintf("max-stream-data/id=%d", v), Frame{Type: FrameMaxStreamData, StreamID: v, Max: 5})
		add(fmt.Sprintf("max-stream-data/max=%d", v), Frame{Type: FrameMaxStreamData, StreamID: 5, Max: v})
		add(fmt.Sprintf("max-streams=%d", v), Frame{Type: FrameMaxStreams, Max: v})
		add(fmt.Sprintf("data-blocked=%d", v), Frame{Type: FrameDataBlocked, Max: v})
		add(fmt.Sprintf("stream-data-blocked/id=%d", v), Frame{Type: FrameStreamDataBlocked, StreamID: v, Max: 6})
		add(fmt.Sprintf("stream-data-blocked/limit=%d", v), Frame{Type: FrameStreamDataBlocked, StreamID: 6, Max: v})
		add(fmt.Sprintf("close/code=%d", v), Frame{Type: FrameConnectionClose, ErrorCode: v, Reason: []byte("bye")})
	}
	for _, n := range []int{1, 63, 64} {
		add(fmt.Sprintf("message/len=%d", n), Frame{Type: FrameMessage, Data: bytes.Repeat([]byte{'m'}, n)})
		add(fmt.Sprintf("close/reason-len=%d", n), Frame{Type: FrameConnectionClose, ErrorCode: 1, Reason: bytes.Repeat([]byte{'r'}, n)})
	}
	return cs
}

func TestFrameRoundTrip(t *testing.T) {
	for _, tc := range frameCases() {
		t.Run(tc.name, func(t *testing.T) {
			b := encodeFrame([]byte{0xee}, &tc.f)[1:]
			got, err := parseAll(b)
			noErr(t, err)
			equal(t, []Frame{tc.f}, got)
		})
	}
}

func TestFrameSequenceWithPadding(t *testing.T) {
	cases := frameCases()
	var b []byte
	var want []Frame
	for i, tc := range cases {
		b = append(b, make([]byte, i%3)...) // 0-2 PADDING bytes between frames
		b = encodeFrame(b, &tc.f)
		want = append(want, tc.f)
	}
	b = append(b, 0, 0, 0)
	got, err := parseAll(b)
	noErr(t, err)
	equal(t, want, got)
}

func TestOnlyPadding(t *testing.T) {
	for _, n := range []int{0, 1, 1200} {
		got, err := parseAll(make([]byte, n))
		noErr(t, err)
		equal(t, 0, len(got))
	}
}

func TestTruncatedEveryByte(t *testing.T) {
	for _, tc := range frameCases() {
		t.Run(tc.name, func(t *testing.T) {
			b := encodeFrame(nil, &tc.f)
			for i := 1; i < len(b); i++ {
				// Copy so the capacity ends at i and a read past it would fault
				// under -race / be caught as an index panic.
				in := bytes.Clone(b[:i])
				_, err := parseAll(in)
				errIs(t, err, ErrTruncated, "truncated to %d of %d bytes", i, len(b))
			}
		})
	}
}

func TestStreamFrameVariants(t *testing.T) {
	tests := []struct {
		name string
		in   []byte
		want Frame
	}{
		{"no-off-no-len", []byte{0x08, 0x05, 'a', 'b', 'c'},
			Frame{Type: FrameStream, StreamID: 5, Data: []byte("abc")}},
		{"no-off-no-len-fin", []byte{0x09, 0x05, 'a'},
			Frame{Type: FrameStream, StreamID: 5, Data: []byte("a"), Fin: true}},
		{"no-off-no-len-empty", []byte{0x08, 0x05},
			Frame{Type: FrameStream, StreamID: 5}},
		{"len", []byte{0x0a, 0x05, 0x02, 'a', 'b'},
			Frame{Type: FrameStream, StreamID: 5, Data: []byte("ab")}},
		{"off-no-len", []byte{0x0c, 0x05, 0x40, 0x64, 'x', 'y'},
			Frame{Type: FrameStream, StreamID: 5, Offset: 100, Data: []byte("xy")}},
		{"off-len-fin", []byte{0x0f, 0x05, 0x07, 0x01, 'z'},
			Frame{Type: FrameStream, StreamID: 5, Offset: 7, Data: []byte("z"), Fin: true}},
		{"off-zero-explicit", []byte{0x0e, 0x05, 0x00, 0x01, 'z'},
			Frame{Type: FrameStream, StreamID: 5, Data: []byte("z")}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseAll(tt.in)
			noErr(t, err)
			equal(t, []Frame{normalize(tt.want)}, got)
		})
	}
}

func TestStreamDataAliasesPayload(t *testing.T) {
	b := AppendStream(nil, 1, 0, []byte("abc"), false)
	b = AppendPing(b)
	var p Parser
	p.Reset(b)
	var f Frame
	ok, err := p.Next(&f)
	noErr(t, err)
	equal(t, true, ok)
	equal(t, 3, cap(f.Data), "capacity clipped to the frame")
	b[len(b)-2] = 'X' // last data byte
	equal(t, "abX", string(f.Data), "Data is a view into the payload, not a copy")
}

func TestStreamOffsetOverflow(t *testing.T) {
	tests := []struct {
		name string
		in   []byte
	}{
		{"len", append(AppendVarint(AppendVarint([]byte{0x0e, 0x01}, MaxVarint), 1), 'a')},
		{"implicit-len", append(AppendVarint([]byte{0x0c, 0x01}, MaxVarint-1), 'a', 'b')},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := parseAll(tt.in)
			errIs(t, err, ErrMalformed)
		})
	}
	// Exactly MaxVarint is fine.
	_, err := parseAll(append(AppendVarint([]byte{0x0c, 0x01}, MaxVarint-1), 'a'))
	noErr(t, err)
}

func TestLengthBeyondPayload(t *testing.T) {
	tests := []struct {
		name string
		in   []byte
	}{
		{"stream", []byte{0x0a, 0x01, 0x05, 'a'}},
		{"stream-huge", AppendVarint([]byte{0x0a, 0x01}, MaxVarint)},
		{"message", []byte{0x30, 0x02, 'a'}},
		{"message-huge", AppendVarint([]byte{0x30}, MaxVarint)},
		{"close-reason", []byte{0x1c, 0x00, 0x03, 'a', 'b'}},
		{"close-reason-huge", AppendVarint([]byte{0x1c, 0x00}, 1<<40)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := parseAll(tt.in)
			errIs(t, err, ErrTruncated)
		})
	}
}

func TestUnknownFrameTypes(t *testing.T) {
	known := map[byte]bool{0x00: true, 0x01: true, 0x02: true, 0x04: true, 0x05: true,
		0x10: true, 0x11: true, 0x12: true, 0x14: true, 0x15: true, 0x1a: true, 0x1b: true, 0x1c: true, 0x30: true}
	for i := 0x08; i <= 0x0f; i++ {
		known[byte(i)] = true
	}
	for i := range 256 {
		if known[byte(i)] {
			continue
		}
		in := []byte{0x01, byte(i), 0, 0, 0, 0, 0, 0, 0, 0}
		var p Parser
		p.Reset(in)
		var f Frame
		ok, err := p.Next(&f)
		noErr(t, err)
		equal(t, true, ok)
		ok, err = p.Next(&f)
		errIs(t, err, ErrUnknownFrame, "type 0x%02x", i)
		equal(t, false, ok)
		equal(t, Frame{}, f, "frame zeroed on error")
		_, err2 := p.Next(&f)
		equal(t, err, err2, "error is sticky")
		p.Reset([]byte{0x01})
		ok, err = p.Next(&f)
		noErr(t, err, "Reset clears the error")
		equal(t, true, ok)
	}
}

func TestErrorMessageHasContext(t *testing.T) {
	_, err := parseAll([]byte{0x01, 0x11, 0x05})
	equal(t, "wire: MAX_STREAM_DATA frame at byte 1: maximum: truncated", err.Error())
}

func TestAckEliciting(t *testing.T) {
	tests := []struct {
		t    FrameType
		want bool
	}{
		{FramePadding, false}, {FramePing, true}, {FrameAck, false},
		{FrameResetStream, true}, {FrameStopSending, true}, {FrameStream, true},
		{FrameStream | streamFinBit | streamOffBit | streamLenBit, true},
		{FrameMaxData, true}, {FrameMaxStreamData, true}, {FrameMaxStreams, true},
		{FrameDataBlocked, true}, {FrameStreamDataBlocked, true},
		{FrameConnectionClose, false}, {FrameMessage, true},
		{FramePathChallenge, true}, {FramePathResponse, true},
	}
	for _, tt := range tests {
		t.Run(tt.t.String(), func(t *testing.T) {
			equal(t, tt.want, tt.t.AckEliciting())
		})
	}
}

func TestPathFrames(t *testing.T) {
	data := [PathDataLen]byte{8, 7, 6, 5, 4, 3, 2, 1}
	for _, enc := range [][]byte{AppendPathChallenge(nil, data), AppendPathResponse(nil, data)} {
		equal(t, PathFrameLen, len(enc))
		fs, err := parseAll(enc)
		noErr(t, err)
		equal(t, 1, len(fs))
		equal(t, data, fs[0].PathData)
		// The payload is copied out: reusing the buffer cannot change it.
		var p Parser
		var f Frame
		p.Reset(enc)
		_, err = p.Next(&f)
		noErr(t, err)
		clear(enc)
		equal(t, data, f.PathData)
	}
}

func TestOverheadFunctions(t *testing.T) {
	for _, id := range boundaries {
		for _, off := range boundaries {
			for _, n := range []int{0, 1, 63, 64, 16383, 16384} {
				if off > MaxVarint-uint64(n) {
					continue
				}
				data := make([]byte, n)
				got := len(AppendStream(nil, id, off, data, true)) - n
				equal(t, got, StreamOverhead(id, off, n), "id=%d off=%d n=%d", id, off, n)
				equal(t, len(AppendMessage(nil, data))-n, MessageOverhead(n), "n=%d", n)
			}
		}
	}
}

func TestFrameTypeString(t *testing.T) {
	equal(t, "STREAM", FrameType(0x0b).String())
	equal(t, "MESSAGE", FrameMessage.String())
	equal(t, "FrameType(0x3f)", FrameType(0x3f).String())
}
