package report

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// rec builds a successful record with the given metrics.
func rec(scenario, cse, peer string, rep int, metrics map[string]float64) Record {
	return Record{Scenario: scenario, Case: cse, Peer: peer, Rep: rep, Metrics: metrics}
}

func goodput(v float64) map[string]float64 { return map[string]float64{MetricGoodput: v} }

func failed(scenario, cse, peer string, rep int, err string) Record {
	r := rec(scenario, cse, peer, rep, goodput(1e9)) // partial metrics must not count
	r.Error = err
	return r
}

func skipped(scenario, cse, peer string, rep int, why string) Record {
	r := rec(scenario, cse, peer, rep, nil)
	r.Skipped = why
	return r
}

// syntheticRecords is a small matrix exercising every kind of cell. Order
// matters: ping comes first and kcp is seen before quic-go.
func syntheticRecords() []Record {
	recs := []Record{
		rec("ping", "64 B", "tcp", 0, map[string]float64{MetricRTTP50: 40, MetricRTTP99: 90}),
		rec("ping", "64 B", "flightline-udp", 0, map[string]float64{MetricRTTP50: 30, MetricRTTP99: 60}),
		rec("zzz", "only", "tcp", 0, map[string]float64{"frobs": 1234.5678}),
		rec("abort", "release on", "flightline-udp", 0, map[string]float64{MetricAbortFullRate: 3.5}),
		failed("aaa", "broken", "tcp", 0, "exit status 2:\n  panic | boom"),
	}
	for rep := range 3 {
		recs = append(recs,
			skipped("bulk", "1 stream", "kcp", rep, "not available: no kcp here"),
			rec("bulk", "1 stream", "tcp", rep, goodput([]float64{50, 70, 55}[rep])), // median 55, mean 58.3
			rec("bulk", "1 stream", "flightline-udp", rep, map[string]float64{
				MetricGoodput:    []float64{100, 130, 110}[rep], // median 110
				MetricCPUProcess: 0.5,
			}),
			failed("bulk", "1 stream", "quic-go", rep, "dial: refused"),
			skipped("bulk", "8 streams | pinned", "kcp", rep, "not available: no kcp here"),
			rec("bulk", "8 streams | pinned", "tcp", rep, goodput(100)),
		)
		if rep < 2 {
			recs = append(recs, rec("bulk", "8 streams | pinned", "flightline-udp", rep, goodput([]float64{200, 220}[rep])))
		} else {
			recs = append(recs, failed("bulk", "8 streams | pinned", "flightline-udp", rep, "timeout"))
		}
	}
	return recs
}

var syntheticOptions = TableOptions{
	PeerOrder:  []string{"flightline-udp", "tcp"},
	Subject:    "flightline-udp",
	RatioPeers: []string{"tcp", "flightline-udp", "quic-go", "not-run"},
}

func TestMarkdownGoodputTable(t *testing.T) {
	md := Markdown(syntheticRecords(), syntheticOptions)
	want := `### Goodput (MB/s, higher is better)

| Case | flightline-udp | tcp | kcp | quic-go | flightline-udp ÷ tcp | flightline-udp ÷ quic-go |
| :--- | ---: | ---: | ---: | ---: | ---: | ---: |
| 1 stream | 110.0 | 55.0 | n/a [1] | FAIL [2] | 2.00× | — |
| 8 streams \| pinned | 210.0 (2/3) [3] | 100.0 | n/a [1] | — | 2.10× | — |

- [1] skipped: not available: no kcp here
- [2] failed: dial: refused
- [3] failed: timeout

`
	require.Contains(t, md, want)
}

func TestMarkdownAbsentMetric(t *testing.T) {
	md := Markdown(syntheticRecords(), syntheticOptions)
	// Only flightline-udp measured CPU, and only in one case: tcp's cells
	// are absent (not failed), so are the ratios, and kcp stays n/a.
	tbl := table(t, md, "### CPU, peer processes (s/GiB, lower is better)")
	require.Equal(t, [][]string{
		{"Case", "flightline-udp", "tcp", "kcp", "quic-go", "flightline-udp ÷ tcp", "flightline-udp ÷ quic-go"},
		{"1 stream", "0.50", "—", "n/a [1]", "FAIL [2]", "—", "—"},
		{"8 streams \\| pinned", "— [3]", "—", "n/a [1]", "—", "—", "—"},
	}, tbl)
}

func TestMarkdownScenarioOrder(t *testing.T) {
	md := Markdown(syntheticRecords(), syntheticOptions)
	var got []string
	for _, line := range strings.Split(md, "\n") {
		if s, ok := strings.CutPrefix(line, "## "); ok {
			got = append(got, s)
		}
	}
	require.Equal(t, []string{"bulk", "ping", "abort", "aaa", "zzz"}, got)

	// Metric tables within a scenario follow the registry.
	bulk := md[strings.Index(md, "## bulk"):strings.Index(md, "## ping")]
	require.Less(t, strings.Index(bulk, "### Goodput"), strings.Index(bulk, "### CPU, peer processes"))
	ping := md[strings.Index(md, "## ping"):strings.Index(md, "## abort")]
	require.Less(t, strings.Index(ping, "### RTT p50"), strings.Index(ping, "### RTT p99"))
}

func TestMarkdownUnknownMetricAndNoMeasurements(t *testing.T) {
	md := Markdown(syntheticRecords(), syntheticOptions)
	require.Equal(t, [][]string{
		{"Case", "tcp"},
		{"only", "1235"},
	}, table(t, md, "### frobs (informational)"))

	// A scenario where everything failed still shows up, error escaped
	// and flattened into one line.
	require.Equal(t, [][]string{
		{"Case", "tcp"},
		{"broken", "FAIL [1]"},
	}, table(t, md, "### No measurements"))
	require.Contains(t, md, "- [1] failed: exit status 2: panic | boom\n")

	// No ratio column where the ratio peers did not run.
	require.Equal(t, [][]string{
		{"Case", "flightline-udp"},
		{"release on", "3.50"},
	}, table(t, md, "### Abort → full rate on B (ms, lower is better)"))
	require.Equal(t, [][]string{
		{"Case", "flightline-udp", "tcp", "flightline-udp ÷ tcp"},
		{"64 B", "30.0", "40.0", "0.75×"},
	}, table(t, md, "### RTT p50 (µs, lower is better)"))
}

func TestMarkdownEmpty(t *testing.T) {
	require.Empty(t, Markdown(nil, TableOptions{}))
}

// table returns the cells of the table following heading in md (header
// row first, alignment row dropped).
func table(t *testing.T, md, heading string) [][]string {
	t.Helper()
	i := strings.Index(md, heading+"\n")
	require.GreaterOrEqual(t, i, 0, "no table %q in:\n%s", heading, md)
	var rows [][]string
	for _, line := range strings.Split(md[i+len(heading)+1:], "\n")[1:] {
		if !strings.HasPrefix(line, "|") {
			break
		}
		if strings.HasPrefix(line, "| :---") {
			continue
		}
		// Split on " | " (escaped pipes inside cells have no spaces around
		// them the way table separators do).
		rows = append(rows, strings.Split(strings.Trim(line, "| "), " | "))
	}
	return rows
}
