package wire

import (
	"bytes"
	"testing"
)

func BenchmarkParseStreamFrame(b *testing.B) {
	data := bytes.Repeat([]byte{0x5a}, 1200)
	payload := AppendStream(nil, 4, 1<<20, data, false)
	var p Parser
	var f Frame
	b.SetBytes(int64(len(payload)))
	b.ReportAllocs()
	for b.Loop() {
		p.Reset(payload)
		if ok, err := p.Next(&f); !ok || err != nil {
			b.Fatal(ok, err)
		}
	}
}

func BenchmarkAppendAck(b *testing.B) {
	for _, n := range []int{1, 8, MaxAckRanges} {
		b.Run(map[int]string{1: "ranges=1", 8: "ranges=8", MaxAckRanges: "ranges=64"}[n], func(b *testing.B) {
			ranges := make([]AckRange, n)
			hi := uint64(1 << 20)
			for i := range ranges {
				ranges[i] = AckRange{hi - 10, hi}
				hi -= 100
			}
			buf := make([]byte, 0, 1500)
			b.ReportAllocs()
			for b.Loop() {
				buf = AppendAck(buf[:0], ranges, 25000)
			}
		})
	}
}

// TestZeroAlloc checks the hot paths stay allocation-free: parsing every
// frame type from a reused Parser, and encoding into a buffer with capacity.
func TestZeroAlloc(t *testing.T) {
	var payload []byte
	for _, tc := range frameCases() {
		payload = encodeFrame(payload, &tc.f)
	}
	payload = append(payload, 0, 0)
	var p Parser
	var f Frame
	allocs := testing.AllocsPerRun(50, func() {
		p.Reset(payload)
		for {
			ok, err := p.Next(&f)
			if err != nil {
				t.Fatal(err)
			}
			if !ok {
				break
			}
		}
		if _, _, err := ReadVarint(payload); err != nil {
			t.Fatal(err)
		}
	})
	equal(t, 0.0, allocs, "parse allocations per run")

	ranges := []AckRange{{900, 1000}, {500, 800}, {0, 10}}
	data := []byte("hello, world")
	buf := make([]byte, 0, 4096)
	header := make([]byte, DataHeaderLen)
	allocs = testing.AllocsPerRun(50, func() {
		b := AppendDataHeader(buf[:0], DataHeader{ConnID: 1, PN: 2})
		b = AppendPing(b)
		b = AppendAck(b, ranges, 1000)
		b = AppendStream(b, 1, 1<<40, data, true)
		b = AppendResetStream(b, 1, 2, 3)
		b = AppendStopSending(b, 1, 2)
		b = AppendMaxData(b, 1<<30)
		b = AppendMaxStreamData(b, 1, 1<<20)
		b = AppendMaxStreams(b, 100)
		b = AppendDataBlocked(b, 1<<30)
		b = AppendStreamDataBlocked(b, 1, 1<<20)
		b = AppendConnectionClose(b, 1, "going away")
		b = AppendMessage(b, data)
		b = AppendVarint(b, MaxVarint)
		copy(header, b)
		if _, err := ParseDataHeader(header); err != nil {
			t.Fatal(err)
		}
	})
	equal(t, 0.0, allocs, "encode allocations per run")
}
