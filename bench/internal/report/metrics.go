package report

import (
	"cmp"
	"fmt"
	"slices"
)

// Metric names, the keys of Record.Metrics.
const (
	// Bulk and loss scenarios.
	MetricGoodput    = "goodput_MBps"          // payload delivered, 10^6 B/s
	MetricCPUProcess = "cpu_process_s_per_GiB" // CPU seconds the peer processes used per GiB delivered
	MetricCPUMachine = "cpu_machine_s_per_GiB" // CPU seconds of the whole machine per GiB delivered
	MetricRetransmit = "retransmit_pct"        // retransmitted / sent payload, percent
	MetricLossSeen   = "loss_seen_pct"         // loss the sender observed, percent (describes the path)
	// MetricRTTInflation is the sender's smoothed RTT sampled every 50 ms
	// over the transfer, averaged, divided by its minimum RTT.
	MetricRTTInflation = "rtt_inflation"

	// Competing-flows scenario: each flow's goodput and share of the sum.
	MetricGoodputA = "goodput_a_MBps"
	MetricGoodputB = "goodput_b_MBps"
	MetricShareA   = "share_a_pct"
	MetricShareB   = "share_b_pct"

	// Ping scenario.
	MetricRTTP50 = "rtt_p50_us"
	MetricRTTP99 = "rtt_p99_us"

	// Scale scenario.
	MetricHandshakes = "handshakes_per_s"
	MetricMemPerConn = "mem_per_conn_KiB"

	// Abort scenario: after stream A is aborted, time until stream B gets its
	// first byte and until it reaches its full rate (also in RTTs).
	MetricAbortFirstByte    = "abort_first_byte_ms"
	MetricAbortFullRate     = "abort_full_rate_ms"
	MetricAbortFullRateRTTs = "abort_full_rate_rtts"
)

// Metric describes how to present one measured quantity.
type Metric struct {
	Name  string // key in Record.Metrics
	Title string // column/axis title, e.g. "Goodput"
	Unit  string // e.g. "MB/s"; empty for dimensionless counts
	// HigherBetter tells the reader which way is good; ignored when
	// Informational is set.
	HigherBetter bool
	// Informational marks metrics that describe the conditions of a run
	// rather than the quality of a peer (e.g. the loss the path showed), so
	// the report claims neither direction for them.
	Informational bool
	// Format is the fmt verb for one value, e.g. "%.1f".
	Format string
}

// metrics is the registry, in the order tables and summaries list them.
var metrics = []Metric{
	{Name: MetricGoodput, Title: "Goodput", Unit: "MB/s", HigherBetter: true, Format: "%.1f"},
	{Name: MetricCPUProcess, Title: "CPU, peer processes", Unit: "s/GiB", Format: "%.2f"},
	{Name: MetricCPUMachine, Title: "CPU, whole machine", Unit: "s/GiB", Format: "%.2f"},
	{Name: MetricRetransmit, Title: "Retransmitted", Unit: "%", Format: "%.2f"},
	{Name: MetricLossSeen, Title: "Loss seen", Unit: "%", Informational: true, Format: "%.2f"},
	{Name: MetricRTTInflation, Title: "RTT inflation (mean srtt ÷ min RTT)", Unit: "×", Format: "%.2f"},
	{Name: MetricGoodputA, Title: "Goodput, first flow", Unit: "MB/s", Informational: true, Format: "%.1f"},
	{Name: MetricGoodputB, Title: "Goodput, second flow", Unit: "MB/s", Informational: true, Format: "%.1f"},
	{Name: MetricShareA, Title: "Share, first flow", Unit: "%", Informational: true, Format: "%.1f"},
	{Name: MetricShareB, Title: "Share, second flow", Unit: "%", Informational: true, Format: "%.1f"},
	{Name: MetricRTTP50, Title: "RTT p50", Unit: "µs", Format: "%.1f"},
	{Name: MetricRTTP99, Title: "RTT p99", Unit: "µs", Format: "%.1f"},
	{Name: MetricHandshakes, Title: "Handshakes", Unit: "1/s", HigherBetter: true, Format: "%.0f"},
	{Name: MetricMemPerConn, Title: "Memory per connection", Unit: "KiB", Format: "%.1f"},
	{Name: MetricAbortFirstByte, Title: "Abort → first byte on B", Unit: "ms", Format: "%.2f"},
	{Name: MetricAbortFullRate, Title: "Abort → full rate on B", Unit: "ms", Format: "%.2f"},
	{Name: MetricAbortFullRateRTTs, Title: "Abort → full rate on B", Unit: "RTTs", Format: "%.1f"},
}

// Metrics returns the registered metrics in presentation order.
func Metrics() []Metric {
	return slices.Clone(metrics)
}

// LookupMetric returns the registered metric called name. An unknown name
// (a peer-specific counter, a metric newer than this table) still gets a
// usable description: its name as title, no direction, a general format.
func LookupMetric(name string) Metric {
	if i := slices.IndexFunc(metrics, func(m Metric) bool { return m.Name == name }); i >= 0 {
		return metrics[i]
	}
	return Metric{Name: name, Title: name, Informational: true, Format: "%.4g"}
}

// Direction is the phrase a table header uses: "higher is better", "lower
// is better" or "informational".
func (m Metric) Direction() string {
	switch {
	case m.Informational:
		return "informational"
	case m.HigherBetter:
		return "higher is better"
	default:
		return "lower is better"
	}
}

// Heading is the metric's title with unit and direction, e.g.
// "Goodput (MB/s, higher is better)".
func (m Metric) Heading() string {
	if m.Unit == "" {
		return fmt.Sprintf("%s (%s)", m.Title, m.Direction())
	}
	return fmt.Sprintf("%s (%s, %s)", m.Title, m.Unit, m.Direction())
}

// FormatValue renders v with the metric's format.
func (m Metric) FormatValue(v float64) string {
	f := m.Format
	if f == "" {
		f = "%.4g"
	}
	return fmt.Sprintf(f, v)
}

// sortMetricNames orders names as the registry does, unknown names after
// the known ones, alphabetically.
func sortMetricNames(names []string) {
	rank := func(n string) int {
		if i := slices.IndexFunc(metrics, func(m Metric) bool { return m.Name == n }); i >= 0 {
			return i
		}
		return len(metrics)
	}
	slices.SortFunc(names, func(a, b string) int {
		return cmp.Or(cmp.Compare(rank(a), rank(b)), cmp.Compare(a, b))
	})
}
