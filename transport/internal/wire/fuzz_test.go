package wire

import (
	"bytes"
	"reflect"
	"testing"
)

// The seed corpora live in testdata/fuzz/<FuzzName>/ (one file per frame
// type and a few multi-frame and malformed payloads).

func FuzzDataHeader(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		typ, typErr := PacketType(data)
		h, err := ParseDataHeader(data)
		if err != nil {
			return
		}
		if typErr != nil || typ != TypeData {
			t.Fatalf("ParseDataHeader accepted a packet PacketType calls %d (%v)", typ, typErr)
		}
		if enc := AppendDataHeader(nil, h); !bytes.Equal(enc, data[:DataHeaderLen]) {
			t.Fatalf("re-encoding %+v gave %x, input was %x", h, enc, data[:DataHeaderLen])
		}
	})
}

func FuzzFrames(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		var p, p2 Parser
		var fr, fr2 Frame
		p.Reset(data)
		for i := 0; ; i++ {
			ok, err := p.Next(&fr)
			if err != nil || !ok {
				return
			}
			want := normalize(fr)
			enc := encodeFrame(nil, &want)
			switch want.Type {
			case FrameStream:
				if n := StreamOverhead(want.StreamID, want.Offset, len(want.Data)) + len(want.Data); n != len(enc) {
					t.Fatalf("frame %d: StreamOverhead predicts %d bytes, encoded %d", i, n, len(enc))
				}
			case FrameAck:
				if n := AckLen(want.Ranges, want.AckDelay); n != len(enc) {
					t.Fatalf("frame %d: AckLen predicts %d bytes, encoded %d", i, n, len(enc))
				}
			case FrameMessage:
				if n := MessageOverhead(len(want.Data)) + len(want.Data); n != len(enc) {
					t.Fatalf("frame %d: MessageOverhead predicts %d bytes, encoded %d", i, n, len(enc))
				}
			}
			p2.Reset(enc)
			ok, err = p2.Next(&fr2)
			if err != nil || !ok {
				t.Fatalf("frame %d (%v): re-encoding %x does not parse: ok=%v err=%v", i, want.Type, enc, ok, err)
			}
			if got := normalize(fr2); !framesEqual(want, got) {
				t.Fatalf("frame %d: round trip changed the frame\nwant %+v\ngot  %+v", i, want, got)
			}
			if ok, err := p2.Next(&fr2); ok || err != nil {
				t.Fatalf("frame %d: re-encoding %x holds more than one frame", i, enc)
			}
		}
	})
}

func framesEqual(a, b Frame) bool {
	if !bytes.Equal(a.Data, b.Data) || !bytes.Equal(a.Reason, b.Reason) || len(a.Ranges) != len(b.Ranges) {
		return false
	}
	for i := range a.Ranges {
		if a.Ranges[i] != b.Ranges[i] {
			return false
		}
	}
	a.Data, b.Data, a.Reason, b.Reason, a.Ranges, b.Ranges = nil, nil, nil, nil, nil, nil
	return reflect.DeepEqual(a, b)
}

// FuzzAckRanges builds a valid range list from the fuzzer's numbers (spec is
// a sequence of varints: first-range length, then gap/length pairs; building
// stops where a range would go below 0), encodes it and checks the parser
// gets the same ranges back, clipped to MaxAckRanges.
func FuzzAckRanges(f *testing.F) {
	f.Fuzz(func(t *testing.T, largest, delay uint64, spec []byte) {
		var p Parser
		var fr Frame
		largest &= MaxVarint
		delay &= MaxVarint
		var ranges []AckRange
		first, n, err := ReadVarint(spec)
		if err != nil || first > largest {
			first, n = 0, 0
		}
		spec = spec[n:]
		ranges = append(ranges, AckRange{largest - first, largest})
		for len(spec) > 0 {
			gap, n1, err1 := ReadVarint(spec)
			if err1 != nil {
				break
			}
			length, n2, err2 := ReadVarint(spec[n1:])
			if err2 != nil {
				break
			}
			spec = spec[n1+n2:]
			prev := ranges[len(ranges)-1].Smallest
			if prev < gap+2 || length > prev-gap-2 {
				break
			}
			hi := prev - gap - 2
			ranges = append(ranges, AckRange{hi - length, hi})
		}
		enc := AppendAck(nil, ranges, delay)
		if n := AckLen(ranges, delay); n != len(enc) {
			t.Fatalf("AckLen %d, encoded %d bytes", n, len(enc))
		}
		p.Reset(enc)
		ok, err := p.Next(&fr)
		if err != nil || !ok {
			t.Fatalf("encoded ACK %x does not parse: %v", enc, err)
		}
		want := ranges[:min(len(ranges), MaxAckRanges)]
		if fr.AckDelay != delay || len(fr.Ranges) != len(want) {
			t.Fatalf("got delay %d and %d ranges, want %d and %d", fr.AckDelay, len(fr.Ranges), delay, len(want))
		}
		for i := range want {
			if fr.Ranges[i] != want[i] {
				t.Fatalf("range %d: got %+v want %+v", i, fr.Ranges[i], want[i])
			}
		}
	})
}
