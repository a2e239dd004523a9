package report

import (
	"fmt"
	"maps"
	"slices"
	"strings"
)

// Summary renders recs one line per run, in the order given, for logs:
//
//	#3 bulk "1 stream" tcp rep 0: goodput_MBps=1234.5 cpu_process_s_per_GiB=0.21 (cubic)
//	#4 bulk "1 stream" kcp rep 0: skipped: not available: ...
//	#5 ping "64 B" quic-go rep 1: FAIL: dial: timeout; rtt_p50_us=80.1
//
// Metrics use their registered format, in registry order; a failed run
// still shows whatever partial metrics it has.
func Summary(recs []Record) string {
	var b strings.Builder
	for i := range recs {
		summaryLine(&b, &recs[i])
	}
	return b.String()
}

func summaryLine(b *strings.Builder, r *Record) {
	fmt.Fprintf(b, "#%d %s %q %s rep %d:", r.Seq, r.Scenario, r.Case, r.Peer, r.Rep)
	if r.Skipped != "" {
		fmt.Fprintf(b, " skipped: %s\n", oneLine(r.Skipped, 0))
		return
	}
	if r.Error != "" {
		fmt.Fprintf(b, " FAIL: %s", oneLine(r.Error, 0))
		if len(r.Metrics) > 0 {
			b.WriteString(";")
		}
	}
	names := slices.Collect(maps.Keys(r.Metrics))
	sortMetricNames(names)
	for _, n := range names {
		fmt.Fprintf(b, " %s=%s", n, LookupMetric(n).FormatValue(r.Metrics[n]))
	}
	if r.Info != "" {
		fmt.Fprintf(b, " (%s)", oneLine(r.Info, 0))
	}
	b.WriteString("\n")
}
