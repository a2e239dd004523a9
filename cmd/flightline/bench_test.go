package main

import (
	"bytes"
	"context"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/flightline/flightline/transport"
	"github.com/stretchr/testify/require"
)

func BenchmarkHeaderDecode(b *testing.B) {
	hdr := mustHeader(b, header{Name: "some-file-name.tar.gz", Size: 1 << 30})
	r := bytes.NewReader(hdr)
	b.ReportAllocs()
	for b.Loop() {
		r.Reset(hdr)
		if _, err := readHeader(r, defaultMaxSize); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkTransferLoopback measures the CLI's file-transfer path (header,
// SHA-256 on both sides, digest round trip) over UDP on loopback: one
// 16 MiB stream per iteration on one connection.
func BenchmarkTransferLoopback(b *testing.B) {
	const size = 16 << 20
	key, err := transport.GenerateKey()
	require.NoError(b, err)
	srvEP, err := transport.Listen("127.0.0.1:0", &transport.Config{PrivateKey: key, Datapath: "udp"})
	require.NoError(b, err)
	srv := &server{ep: srvEP, rc: &receiver{maxSize: size}, done: func(result, error) {}}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { srv.run(ctx, time.Second); close(done) }()
	defer func() { cancel(); <-done }()
	conn, err := transport.Dial(ctx, srvEP.LocalAddr().String(), srvEP.PublicKey(), &transport.Config{Datapath: "udp"})
	require.NoError(b, err)
	defer conn.Endpoint().Close()
	b.SetBytes(size)
	b.ResetTimer()
	for i := range b.N {
		var seed [32]byte
		seed[0] = byte(i)
		if _, err := sendOne(ctx, conn, "bench", size, rand.NewChaCha8(seed), nil, false); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	st := conn.Stats()
	b.ReportMetric(float64(st.PacketsRetransmitted)/float64(max(st.PacketsSent, 1)), "retx/pkt")
}
