package testnet

import (
	"testing"
	"time"
)

// BenchmarkSetup measures building and deleting a network.
func BenchmarkSetup(b *testing.B) {
	RequirePrivileged(b)
	for _, bc := range []struct {
		name string
		cfg  Config
	}{{"direct", Config{}}, {"hop", Config{Hop: true}}} {
		b.Run(bc.name, func(b *testing.B) {
			for b.Loop() {
				n, err := Setup(bc.cfg)
				if err != nil {
					b.Fatal(err)
				}
				if err := n.Close(); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkForward blasts one-way UDP (64-byte payload, unpaced) from a
// kernel socket in A to one in B through each path. ns/op is per datagram
// sent; rx-pps and loss-% (anything not received: configured loss, hop or
// socket overflow) come from the receiver. Use -benchtime=200000x or so.
func BenchmarkForward(b *testing.B) {
	RequirePrivileged(b)
	for _, bc := range []struct {
		name string
		cfg  Config
	}{
		{"direct", Config{}},
		{"hop-kernel", Config{Hop: true}},
		{"hop-kernel-loss", Config{AtoB: Impairment{Loss: 0.01}}},
		{"hop-userspace", Config{AtoB: Impairment{Delay: 1}}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			n := New(b, bc.cfg)
			ca, cb := listenUDP(b, n.A, n.A.Addr), listenUDP(b, n.B, n.B.Addr)
			dst := addrPort(cb)
			res := make(chan recvResult, 1)
			sendDone := make(chan struct{})
			go func() { res <- receiveSeq(cb, 0, 200*time.Millisecond, sendDone) }()
			buf := make([]byte, 64)
			sent := 0
			for b.Loop() {
				if _, err := ca.WriteToUDPAddrPort(buf, dst); err != nil {
					b.Fatal(err)
				}
				sent++
			}
			close(sendDone)
			r := <-res
			if span := r.last.Sub(r.first).Seconds(); span > 0 {
				b.ReportMetric(float64(r.got)/span, "rx-pps")
			}
			b.ReportMetric(100*float64(sent-r.got)/float64(max(sent, 1)), "loss-%")
		})
	}
}
