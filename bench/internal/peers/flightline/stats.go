package flightline

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/flightline/flightline/transport"
)

// connInfo describes the datapath a connection actually ran on, its
// offloads and its crypto, for the report's info column.
func (p *flPeer) connInfo(st transport.Stats) string {
	var b strings.Builder
	fmt.Fprintf(&b, "datapath=%s", st.Datapath)
	if st.Datapath == "xdp" {
		fmt.Fprintf(&b, " xdp_mode=%s zerocopy=%t queues=%d", p.xdpMode, st.Link.ZeroCopy, st.Link.Queues)
	} else {
		fmt.Fprintf(&b, " gso=%t gro=%t", st.Link.GSO, st.Link.GRO)
	}
	fmt.Fprintf(&b, " suite=%s cc=%s", st.Suite, st.Controller)
	if st.Link.Note != "" {
		fmt.Fprintf(&b, " (%s)", st.Link.Note)
	}
	return b.String()
}

// connNotes are the counters of one connection worth a report line: how
// much loss recovery the run needed and what RTT the transport saw.
func connNotes(st transport.Stats) map[string]float64 {
	n := map[string]float64{
		"packets_sent":     float64(st.PacketsSent),
		"packets_received": float64(st.PacketsReceived),
		"retransmits":      float64(st.PacketsRetransmitted),
		"lost":             float64(st.PacketsLost),
		"tlps":             float64(st.TailLossProbes),
		"rtos":             float64(st.RTOs),
		"srtt_us":          float64(st.SmoothedRTT) / float64(time.Microsecond),
		"min_rtt_us":       float64(st.MinRTT) / float64(time.Microsecond),
		"dup_stream_bytes": float64(st.DuplicateStreamBytes),
		"send_errors":      float64(st.SendErrors),
	}
	// The datapath's own drops on this side (AF_XDP kernel counters and
	// transmit backpressure); nonzero on a lossless network means the
	// datapath itself lost packets.
	lc := st.Link.Counters
	n["link_rx_dropped"] = float64(lc.RxDropped)
	n["link_rx_fill_ring_empty"] = float64(lc.RxFillRingEmpty)
	n["link_rx_ring_full"] = float64(lc.RxRingFull)
	n["link_tx_full_waits"] = float64(lc.TxFullWaits)
	n["link_tx_full_errors"] = float64(lc.TxFullErrors)
	n["link_neighbour_drops"] = float64(lc.NeighbourDrops)
	if st.PacketsSent > 0 {
		n["retransmit_pct"] = 100 * float64(st.PacketsRetransmitted) / float64(st.PacketsSent)
	}
	return n
}

// checkStats reports transport invariants a run must not break: the flight
// ledger never releases below zero (a nonzero count is a transport bug
// whatever the numbers look like).
func checkStats(st transport.Stats) error {
	if st.FlightUnderflows != 0 {
		return fmt.Errorf("flight ledger underflowed %d times (transport bug)", st.FlightUnderflows)
	}
	return nil
}

// closeTimeout bounds the graceful close after a run: long enough for the
// last ACKs on any path a run finishes on, short enough not to hold the
// orchestrator when the peer is gone.
const closeTimeout = 2 * time.Second

// closeGracefully closes c once everything it sent is acknowledged (the
// bulk ack byte, the last echo), bounded by closeTimeout and ctx, so the
// peer never loses the tail of a run to our close.
func closeGracefully(ctx context.Context, c *transport.Conn) {
	ctx, cancel := context.WithTimeout(ctx, closeTimeout)
	defer cancel()
	c.CloseContext(ctx)
}
