package tcp

import (
	"context"
	"fmt"
	"net"
	"time"

	"github.com/flightline/flightline/bench/internal/peer"
	"golang.org/x/sys/unix"
)

// tcpInfo reads the kernel's TCP_INFO of c: one getsockopt, cheap enough to
// take after a run without disturbing it.
func tcpInfo(c net.Conn) (*unix.TCPInfo, error) {
	tc, ok := c.(*net.TCPConn)
	if !ok {
		return nil, fmt.Errorf("tcp_info: %T is not a TCP connection", c)
	}
	raw, err := tc.SyscallConn()
	if err != nil {
		return nil, fmt.Errorf("tcp_info: %w", err)
	}
	var (
		ti   *unix.TCPInfo
		gerr error
	)
	if err := raw.Control(func(fd uintptr) {
		ti, gerr = unix.GetsockoptTCPInfo(int(fd), unix.IPPROTO_TCP, unix.TCP_INFO)
	}); err != nil {
		return nil, fmt.Errorf("tcp_info: %w", err)
	}
	if gerr != nil {
		return nil, fmt.Errorf("tcp_info: %w", gerr)
	}
	return ti, nil
}

// retransNotes sums the kernel's retransmission counters over conns (the
// sending side's view, so the client's in Bulk): segments retransmitted,
// segments sent, and the ratio, named like the other peers' notes. A
// connection whose TCP_INFO cannot be read is skipped; with none readable
// there are no notes rather than misleading zeros.
func retransNotes(conns []net.Conn) map[string]float64 {
	var (
		retrans, segs uint64
		rttSum        float64
		minRTT        uint32
		n             int
	)
	for _, c := range conns {
		ti, err := tcpInfo(c)
		if err != nil {
			continue
		}
		retrans += uint64(ti.Total_retrans)
		segs += uint64(ti.Segs_out)
		rttSum += float64(ti.Rtt)
		if ti.Min_rtt > 0 && (minRTT == 0 || ti.Min_rtt < minRTT) {
			minRTT = ti.Min_rtt
		}
		n++
	}
	if n == 0 {
		return nil
	}
	notes := map[string]float64{
		"retransmits": float64(retrans),
		"segs_out":    float64(segs),
		"srtt_us":     rttSum / float64(n),
	}
	if segs > 0 {
		notes["retransmit_pct"] = 100 * float64(retrans) / float64(segs)
	}
	if minRTT > 0 {
		notes["min_rtt_us"] = float64(minRTT)
	}
	return notes
}

// sampleRTT samples the kernel's smoothed RTT (µs) of conns every 50 ms
// until the returned function is called, which returns the mean over all
// samples (0 if none): the RTT the transfer ran at.
func sampleRTT(ctx context.Context, conns *connSet) func() float64 {
	var (
		sum float64
		n   int
	)
	stop := peer.Every(ctx, 50*time.Millisecond, func() {
		for _, c := range conns.snapshot() {
			if ti, err := tcpInfo(c); err == nil && ti.Rtt > 0 {
				sum += float64(ti.Rtt)
				n++
			}
		}
	})
	return func() float64 {
		stop()
		if n == 0 {
			return 0
		}
		return sum / float64(n)
	}
}
