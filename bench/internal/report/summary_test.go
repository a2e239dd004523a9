package report

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestSummary(t *testing.T) {
	ok := rec("bulk", "1 stream", "tcp", 0, map[string]float64{"zeta": 2, MetricCPUProcess: 0.214, MetricGoodput: 1234.56})
	ok.Seq, ok.Info = 3, "cubic"
	sk := skipped("bulk", "1 stream", "kcp", 0, "not available:\nno kcp")
	sk.Seq = 4
	f := failed("ping", "64 B", "quic-go", 1, "dial: timeout")
	f.Seq, f.Metrics = 5, map[string]float64{MetricRTTP50: 80.14}
	f2 := failed("ping", "64 B", "quic-go", 2, "boom")
	f2.Seq, f2.Metrics = 6, nil

	require.Equal(t, `#3 bulk "1 stream" tcp rep 0: goodput_MBps=1234.6 cpu_process_s_per_GiB=0.21 zeta=2 (cubic)
#4 bulk "1 stream" kcp rep 0: skipped: not available: no kcp
#5 ping "64 B" quic-go rep 1: FAIL: dial: timeout; rtt_p50_us=80.1
#6 ping "64 B" quic-go rep 2: FAIL: boom
`, Summary([]Record{ok, sk, f, f2}))
}
