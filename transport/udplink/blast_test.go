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

			// rx is usable again afterwards: the deadline was cleared.
			sendAll(t, tx, rx.LocalAddr(), [][]byte{[]byte("after")}, 1)
			got := recvN(t, rx, 1, 64)
			require.Equal(t, "after", string(got[len(got)-1].data))
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
