package e2e

import (
	"fmt"
	"testing"
	"time"

	"github.com/flightline/flightline/testnet"
)

// TestVethTransferLoss moves data on 8 concurrent streams across a veth
// hop that drops 0 %, 1 % and 5 % of packets each way, and checks every
// stream arrives byte-identical.
func TestVethTransferLoss(t *testing.T) {
	testnet.RequirePrivileged(t)
	const streams = 8
	for _, dp := range datapaths {
		for _, tc := range []struct {
			loss  float64
			total int64
		}{
			{0, 256 * MiB},
			{0.01, 256 * MiB},
			{0.05, 256 * MiB},
		} {
			t.Run(fmt.Sprintf("%s/loss=%g", dp.name, tc.loss), func(t *testing.T) {
				total := sized(tc.total, 32*MiB, 4*MiB)
				imp := testnet.Impairment{Loss: tc.loss}
				n := testnet.New(t, testnet.Config{AtoB: imp, BtoA: imp, Hop: true})
				p := connect(t, n, dp, lossyConfig(t), lossyConfig(t))
				r := transfer(t, p, streams, total/streams, 1, 150*time.Second)
				logStats(t, "transfer", p, n, r)
				requireDrained(t, p)
			})
		}
	}
}
