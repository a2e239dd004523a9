package udplink

import (
	"context"
	"fmt"
	"github.com/stretchr/testify/require"
	"testing"
	"time"

	"github.com/flightline/flightline/transport/link"
)

func TestBlast(t *testing.T) {
	for _, gso := range []bool{true, false} {
		t.Run(fmt.Sprintf("gso=%v", gso), func(t *testing.T) {
			tx := listen(t, loop4, Config{DisableGSO: !gso})
			rx := listen(t, loop4, Config{})
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			const bytes = 4 << 20
			res, err := Blast(ctx, tx, rx, bytes, link.MaxPacketSize)
			require.NoError(t, err)
			want := int64((bytes + link.MaxPacketSize - 1) / link.MaxPacketSize)
			require.Equal(t, want, res.Sent)
			require.Equal(t, res.Sent, res.Packets+res.Lost)
			require.Equal(t, res.Packets*link.MaxPacketSize, res.Bytes)
			require.Positive(t, res.Packets)
			require.Positive(t, res.Duration)
			t.Logf("%d pkts in %v: %.0f pkts/s, %.1f MB/s, loss %.2f%%",
				res.Packets, res.Duration, res.PacketsPerSec(), res.BytesPerSec()/1e6, 100*res.Loss())

			require.LessOrEqual(t, res.Dropped, res.Lost)
			requireUsableAfterBlast(t, tx, rx, res)
		})
	}
	t.Run("cancelled", func(t *testing.T) {
		tx := listen(t, loop4, Config{})
		rx := listen(t, loop4, Config{})
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		_, err := Blast(ctx, tx, rx, 1<<30, 1000)
		require.ErrorIs(t, err, context.Canceled)
	})
	t.Run("bad payload", func(t *testing.T) {
		tx := listen(t, loop4, Config{})
		_, err := Blast(context.Background(), tx, tx, 100, 0)
		require.True(t, err != nil)
	})
}

// requireUsableAfterBlast checks that rx works after a Blast: its read
// deadline was cleared. A blast datagram that reached rx only after Blast gave
// up on it (it was counted lost) may still come first; each must be one.
func requireUsableAfterBlast(t *testing.T, tx, rx *Link, res BlastResult) {
	t.Helper()
	sendAll(t, tx, rx.LocalAddr(), [][]byte{[]byte("after")}, 1)
	late := int64(0)
	for {
		for _, m := range recvN(t, rx, 1, 64) {
			if string(m.data) == "after" {
				if late > 0 {
					t.Logf("%d blast datagrams arrived after Blast returned", late)
				}
				return
			}
			require.Len(t, m.data, link.MaxPacketSize, "a datagram that is neither a blast's nor ours")
			late++
			require.LessOrEqual(t, late, res.Lost, "more late blast datagrams than Blast counted lost")
		}
	}
}

// TestBlastStarvedReceiver: a receiver goroutine that gets no CPU for a while
// (here: longer than blastIdle before its first read) leaves the datagrams
// queued in rx's socket, not lost. Blast counted them lost and returned with
// them still queued (29 % to 100 % "loss" on loopback on a loaded machine);
// it now waits while rx's receive queue is not empty.
func TestBlastStarvedReceiver(t *testing.T) {
	tx := listen(t, loop4, Config{})
	rx := listen(t, loop4, Config{})
	blastRecvStart = func() { time.Sleep(4 * blastIdle) }
	t.Cleanup(func() { blastRecvStart = nil })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	const count = 256 // about 1 MB of receive buffer of the default 8 MB
	res, err := Blast(ctx, tx, rx, count*link.MaxPacketSize, link.MaxPacketSize)
	require.NoError(t, err)
	t.Logf("%+v", res)
	require.EqualValues(t, count, res.Sent)
	require.Zero(t, res.Dropped, "the receive buffer overflowed: the test's premise failed")
	require.EqualValues(t, count, res.Packets, "queued datagrams were counted lost")
	require.Zero(t, res.Lost)
	requireUsableAfterBlast(t, tx, rx, res)
}

// BenchmarkRawBlast is the datapath ceiling: one goroutine WriteBatch-ing
// 1452-byte datagrams, one ReadBatch-ing them, over loopback. One op is one
// batch of link.IdealBatchSize datagrams.
func BenchmarkRawBlast(b *testing.B) {
	for _, gso := range []bool{true, false} {
		b.Run(fmt.Sprintf("gso=%s", map[bool]string{true: "on", false: "off"}[gso]), func(b *testing.B) {
			tx := listen(b, loop4, Config{DisableGSO: !gso})
			rx := listen(b, loop4, Config{})
			const payload = link.MaxPacketSize
			batch := int64(tx.BatchSize())
			b.SetBytes(batch * payload)
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
			defer cancel()
			b.ResetTimer()
			res, err := Blast(ctx, tx, rx, int64(b.N)*batch*payload, payload)
			b.StopTimer()
			if err != nil {
				b.Fatal(err)
			}
			b.ReportMetric(res.PacketsPerSec(), "pkts/s")
			b.ReportMetric(res.BytesPerSec()/1e6, "goodput-MB/s")
			b.ReportMetric(100*res.Loss(), "loss-%")
		})
	}
}
