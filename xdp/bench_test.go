package xdp

import (
	"net/netip"
	"sync/atomic"
	"testing"
	"time"

	"github.com/flightline/flightline/bpf"
	"github.com/flightline/flightline/testnet"
	"github.com/flightline/flightline/transport/link"
	"github.com/flightline/flightline/transport/udplink"
)

// BenchmarkXDPBlast sends 64-byte and 1200-byte datagrams from A to B over a
// veth pair as fast as WriteBatch accepts them and reports the received
// packet rate: AF_XDP → AF_XDP (generic and native mode) against udplink →
// udplink. Every run is bounded to 3 s of sending. Run with e.g.
// -bench XDPBlast -benchtime 300000x.
func BenchmarkXDPBlast(b *testing.B) {
	n := testnet.New(b, testnet.Config{})
	type pair struct {
		name   string
		tx, rx link.Link
	}
	var pairs []pair
	for _, mode := range []bpf.Mode{bpf.ModeGeneric, bpf.ModeNative} {
		rx := listenOn(b, n.B, Config{Mode: mode, Addr: netip.AddrPortFrom(n.B.Addr, 5000+uint16(mode))})
		tx := listenOn(b, n.A, Config{Mode: mode, Addr: netip.AddrPortFrom(n.A.Addr, 5000+uint16(mode))})
		pairs = append(pairs, pair{"xdp-" + mode.String(), tx, rx})
		// Both xdp links on a host must go before the next mode attaches.
		b.Run(pairs[len(pairs)-1].name, func(b *testing.B) { runSizes(b, tx, rx) })
		tx.Close()
		rx.Close()
	}
	var utx, urx *udplink.Link
	if err := n.B.Run(func() (err error) {
		urx, err = udplink.Listen(netip.AddrPortFrom(n.B.Addr, 6000), udplink.Config{})
		return err
	}); err != nil {
		b.Fatal(err)
	}
	defer urx.Close()
	if err := n.A.Run(func() (err error) {
		utx, err = udplink.Listen(netip.AddrPortFrom(n.A.Addr, 6000), udplink.Config{})
		return err
	}); err != nil {
		b.Fatal(err)
	}
	defer utx.Close()
	b.Run("udplink", func(b *testing.B) { runSizes(b, utx, urx) })
}

func runSizes(b *testing.B, tx, rx link.Link) {
	var got atomic.Int64
	var last atomic.Int64 // unix nanos of the latest receive
	go func() {
		msgs := make([]link.Message, 64)
		for i := range msgs {
			msgs[i].Buf = make([]byte, link.MaxPacketSize)
		}
		for {
			for i := range msgs {
				msgs[i].Buf = msgs[i].Buf[:cap(msgs[i].Buf)]
			}
			k, err := rx.ReadBatch(msgs)
			if err != nil {
				return
			}
			got.Add(int64(k))
			last.Store(time.Now().UnixNano())
		}
	}()
	if x, ok := tx.(*Link); ok {
		resolved(b, x, rx.LocalAddr().Addr())
	}
	for _, size := range []int{64, 1200} {
		b.Run(map[int]string{64: "64B", 1200: "1200B"}[size], func(b *testing.B) {
			msgs := make([]link.Message, 64)
			for i := range msgs {
				msgs[i] = link.Message{Buf: make([]byte, size), Addr: rx.LocalAddr()}
			}
			start0 := got.Load()
			b.SetBytes(int64(size))
			b.ResetTimer()
			start := time.Now()
			stop := start.Add(3 * time.Second)
			sent := 0
			for sent < b.N && time.Now().Before(stop) {
				k := min(len(msgs), b.N-sent)
				w, err := tx.WriteBatch(msgs[:k])
				sent += w
				if err != nil {
					b.Fatal(err)
				}
			}
			sendTime := time.Since(start)
			// Let the receiver drain, bounded.
			drain := time.Now().Add(500 * time.Millisecond)
			for got.Load()-start0 < int64(sent) && time.Now().Before(drain) {
				time.Sleep(time.Millisecond)
			}
			b.StopTimer()
			recv := got.Load() - start0
			end := time.Unix(0, last.Load())
			if recv > 0 && end.After(start) {
				b.ReportMetric(float64(recv)/end.Sub(start).Seconds(), "rx-pps")
			}
			b.ReportMetric(float64(sent)/sendTime.Seconds(), "tx-pps")
			if sent > 0 {
				b.ReportMetric(100*float64(int64(sent)-recv)/float64(sent), "loss-%")
			}
		})
	}
}

// BenchmarkXDPJumbo sends datagrams as large as the MTU allows from one
// AF_XDP link to another (native mode) over a 1500-byte and a 9000-byte
// veth pair and reports the received payload rate: what multi-buffer
// frames buy per packet. Each run sends for at most 2 s. Run with e.g.
// -bench XDPJumbo -benchtime 100000x.
func BenchmarkXDPJumbo(b *testing.B) {
	for _, mtu := range []int{1500, 9000} {
		b.Run(map[int]string{1500: "mtu1500", 9000: "mtu9000"}[mtu], func(b *testing.B) {
			n := testnet.New(b, testnet.Config{MTU: mtu})
			rx := listenOn(b, n.B, Config{Mode: bpf.ModeNative})
			tx := listenOn(b, n.A, Config{Mode: bpf.ModeNative})
			resolved(b, tx, n.B.Addr)
			size := tx.MaxPayload()
			var got, bytes atomic.Int64
			go func() {
				msgs := make([]link.Message, 64)
				for i := range msgs {
					msgs[i].Buf = make([]byte, 65536)
				}
				for {
					for i := range msgs {
						msgs[i].Buf = msgs[i].Buf[:cap(msgs[i].Buf)]
					}
					k, err := rx.ReadBatch(msgs)
					if err != nil {
						return
					}
					for _, m := range msgs[:k] {
						bytes.Add(int64(len(m.Buf)))
					}
					got.Add(int64(k))
				}
			}()
			msgs := make([]link.Message, 32)
			for i := range msgs {
				msgs[i] = link.Message{Buf: make([]byte, size), Addr: rx.LocalAddr()}
			}
			b.SetBytes(int64(size))
			b.ResetTimer()
			start := time.Now()
			stop := start.Add(2 * time.Second)
			sent := 0
			for sent < b.N && time.Now().Before(stop) {
				w, err := tx.WriteBatch(msgs[:min(len(msgs), b.N-sent)])
				sent += w
				if err != nil {
					b.Fatal(err)
				}
			}
			drain := time.Now().Add(500 * time.Millisecond)
			for got.Load() < int64(sent) && time.Now().Before(drain) {
				time.Sleep(time.Millisecond)
			}
			el := time.Since(start)
			b.StopTimer()
			b.ReportMetric(float64(bytes.Load())/el.Seconds()/1e6, "rx-MB/s")
			b.ReportMetric(float64(size), "payload-B")
			if sent > 0 {
				b.ReportMetric(100*float64(int64(sent)-got.Load())/float64(sent), "loss-%")
			}
		})
	}
}
