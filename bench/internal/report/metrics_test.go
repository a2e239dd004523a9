package report

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestMetricRegistry(t *testing.T) {
	seen := map[string]bool{}
	for _, m := range Metrics() {
		require.False(t, seen[m.Name], "duplicate %s", m.Name)
		seen[m.Name] = true
		require.NotEmpty(t, m.Title, m.Name)
		require.NotEmpty(t, m.Format, m.Name)
		require.Equal(t, m, LookupMetric(m.Name))
	}
	require.Len(t, seen, 17)
	require.Equal(t, "RTT inflation (mean srtt ÷ min RTT) (×, lower is better)", LookupMetric(MetricRTTInflation).Heading())

	require.Equal(t, "Goodput (MB/s, higher is better)", LookupMetric(MetricGoodput).Heading())
	require.Equal(t, "Handshakes (1/s, higher is better)", LookupMetric(MetricHandshakes).Heading())
	require.Equal(t, "Memory per connection (KiB, lower is better)", LookupMetric(MetricMemPerConn).Heading())
	require.Equal(t, "Loss seen (%, informational)", LookupMetric(MetricLossSeen).Heading())

	u := LookupMetric("pkts_per_syscall")
	require.Equal(t, "pkts_per_syscall (informational)", u.Heading())
	require.Equal(t, "3.142", u.FormatValue(3.14159))

	names := []string{"zz", MetricRTTP99, "aa", MetricGoodput}
	sortMetricNames(names)
	require.Equal(t, []string{MetricGoodput, MetricRTTP99, "aa", "zz"}, names)
}

func TestOneLine(t *testing.T) {
	require.Equal(t, "a b c", oneLine(" a\n\tb  c \n", 0))
	require.Equal(t, "abcd…", oneLine("abcdefgh", 5))
	require.Equal(t, "äöü", oneLine("äöü", 3), "limit counts runes")
	require.Equal(t, strings.Repeat("x", maxFootnote-1)+"…", oneLine(strings.Repeat("x", 1000), maxFootnote))
	require.Equal(t, `a \| b`, escapeCell("a |\nb"))
}
