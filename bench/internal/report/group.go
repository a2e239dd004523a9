package report

import (
	"slices"

	"github.com/flightline/flightline/bench/internal/stats"
)

// scenarioOrder is the order the report presents scenarios in: the story
// goes from raw throughput through loss and latency to the protocol
// features; scenarios not listed follow alphabetically.
var scenarioOrder = []string{"bulk", "loss", "ping", "abort", "scale"}

// scenarios returns the scenarios present in recs in report order.
func scenarios(recs []Record) []string {
	present := firstSeen(recs, func(r Record) string { return r.Scenario })
	var out []string
	for _, s := range scenarioOrder {
		if slices.Contains(present, s) {
			out = append(out, s)
		}
	}
	var rest []string
	for _, s := range present {
		if !slices.Contains(scenarioOrder, s) {
			rest = append(rest, s)
		}
	}
	slices.Sort(rest)
	return append(out, rest...)
}

// firstSeen returns the distinct values of key over recs in order of first
// appearance, which is the order the orchestrator chose to run them in.
func firstSeen[T any](recs []T, key func(T) string) []string {
	var out []string
	for _, r := range recs {
		if k := key(r); !slices.Contains(out, k) {
			out = append(out, k)
		}
	}
	return out
}

// byCasePeer groups recs by case and peer.
func byCasePeer(recs []*Record) map[[2]string][]*Record {
	m := make(map[[2]string][]*Record)
	for _, r := range recs {
		k := [2]string{r.Case, r.Peer}
		m[k] = append(m[k], r)
	}
	return m
}

// orderPeers puts the preferred peers that are present first, in preferred
// order, then the other present peers in their given order.
func orderPeers(present, preferred []string) []string {
	var out []string
	for _, p := range preferred {
		if slices.Contains(present, p) && !slices.Contains(out, p) {
			out = append(out, p)
		}
	}
	for _, p := range present {
		if !slices.Contains(out, p) {
			out = append(out, p)
		}
	}
	return out
}

// filter returns pointers to the records of recs for which keep is true.
func filter(recs []Record, keep func(*Record) bool) []*Record {
	var out []*Record
	for i := range recs {
		if keep(&recs[i]) {
			out = append(out, &recs[i])
		}
	}
	return out
}

// cell aggregates the repetitions of one peer in one case for one metric.
type cell struct {
	values   []float64 // the metric over successful repetitions that have it
	attempts int       // repetitions that were not skipped
	runs     int       // all records, skipped ones included
	skipped  []string  // skip reasons, in record order
	failures []string  // errors of failed repetitions, in record order
}

// newCell aggregates recs (all of one scenario, case and peer) for metric;
// an empty metric aggregates only the run outcomes.
func newCell(recs []*Record, metric string) cell {
	var c cell
	for _, r := range recs {
		c.runs++
		switch {
		case r.Skipped != "":
			c.skipped = append(c.skipped, r.Skipped)
			continue
		case r.Error != "":
			c.failures = append(c.failures, r.Error)
		default:
			if v, ok := r.Value(metric); ok && metric != "" {
				c.values = append(c.values, v)
			}
		}
		c.attempts++
	}
	return c
}

// median is the cell's median and whether it has any value.
func (c cell) median() (float64, bool) {
	if len(c.values) == 0 {
		return 0, false
	}
	return stats.Median(c.values), true
}

// allSkipped: the peer never ran in this case here.
func (c cell) allSkipped() bool { return c.runs > 0 && c.attempts == 0 }

// allFailed: no repetition that ran succeeded.
func (c cell) allFailed() bool { return c.attempts > 0 && len(c.failures) == c.attempts }
