package report

import (
	"fmt"
	"math"
	"slices"
	"strings"
)

// TableOptions chooses the columns of the Markdown tables.
type TableOptions struct {
	// PeerOrder lists the peers to show first, in this order; peers not
	// listed follow in the order they first appear in the records.
	PeerOrder []string
	// Subject is the peer the ratio columns are about (e.g.
	// "flightline-udp"); empty for no ratio columns.
	Subject string
	// RatioPeers are the peers Subject is divided by, one column each
	// ("flightline-udp ÷ tcp"), in this order. Subject itself and peers
	// that do not appear in a scenario get no column there.
	RatioPeers []string
}

// Cell texts for values that are not a number.
const (
	cellAbsent  = "—"    // not measured (peer did not report this metric)
	cellSkipped = "n/a"  // every run of this peer in this case was skipped
	cellFailed  = "FAIL" // every run that happened failed
)

// maxFootnote bounds a footnote's length: an error can carry a whole
// stderr, and the table's notes should stay scannable (the JSONL file has it
// in full).
const maxFootnote = 300

// Markdown renders recs as one section per scenario (bulk, loss, ping,
// abort, scale, then others alphabetically) with one table per metric
// present in that scenario's successful runs (in registry order, unknown
// metrics after, alphabetically).
//
// Rows are cases in first-seen order, columns are peers (see TableOptions),
// and a cell is:
//   - the median over the successful repetitions, e.g. "123.4", followed by
//     "(k/n)" when only k of the table's n repetitions contributed;
//   - "n/a [i]" when all of the peer's runs in the case were skipped;
//   - "FAIL [i]" when every run that happened failed;
//   - "—" when the metric was not measured.
//
// "[i]" refers to a note under the table giving the skip reason or error
// (deduplicated, flattened to one line, shortened to maxFootnote runes).
// Cells that are not "n/a" carry the notes of all their failed
// repetitions, so a partial count such as "210.0 (2/3) [3]" is explained.
// Ratio columns divide the Subject's median by another peer's, "1.23×",
// where both exist (and the divisor is not zero); otherwise "—".
//
// A scenario whose runs produced no metric at all still gets a table, so
// that failures and skips are never silently dropped.
func Markdown(recs []Record, opts TableOptions) string {
	var b strings.Builder
	for _, sc := range scenarios(recs) {
		in := filter(recs, func(r *Record) bool { return r.Scenario == sc })
		fmt.Fprintf(&b, "## %s\n\n", sc)
		names := metricNames(in)
		if len(names) == 0 {
			writeTable(&b, in, "", "No measurements", opts)
			continue
		}
		for _, name := range names {
			writeTable(&b, in, name, LookupMetric(name).Heading(), opts)
		}
	}
	return b.String()
}

// metricNames lists the metrics present in the successful runs of recs, in
// presentation order.
func metricNames(recs []*Record) []string {
	var names []string
	for _, r := range recs {
		if !r.OK() {
			continue
		}
		for n := range r.Metrics {
			if !slices.Contains(names, n) {
				names = append(names, n)
			}
		}
	}
	sortMetricNames(names)
	return names
}

// writeTable writes one heading, table and its notes for metric over recs
// (all of one scenario).
func writeTable(b *strings.Builder, recs []*Record, metric, heading string, opts TableOptions) {
	cases := firstSeen(recs, func(r *Record) string { return r.Case })
	peers := orderPeers(firstSeen(recs, func(r *Record) string { return r.Peer }), opts.PeerOrder)
	var ratios []string
	if slices.Contains(peers, opts.Subject) {
		for _, p := range opts.RatioPeers {
			if p != opts.Subject && slices.Contains(peers, p) && !slices.Contains(ratios, p) {
				ratios = append(ratios, p)
			}
		}
	}

	groups := byCasePeer(recs)
	cells := make(map[[2]string]cell, len(groups))
	maxReps := 0
	for k, g := range groups {
		cl := newCell(g, metric)
		cells[k] = cl
		maxReps = max(maxReps, cl.attempts)
	}

	m := LookupMetric(metric)
	var notes []string
	note := func(text string) string {
		text = oneLine(text, maxFootnote)
		i := slices.Index(notes, text)
		if i < 0 {
			notes = append(notes, text)
			i = len(notes) - 1
		}
		return fmt.Sprintf("[%d]", i+1)
	}

	fmt.Fprintf(b, "### %s\n\n", heading)
	header := []string{"Case"}
	align := []string{":---"}
	for _, p := range peers {
		header = append(header, escapeCell(p))
		align = append(align, "---:")
	}
	for _, p := range ratios {
		header = append(header, escapeCell(opts.Subject+" ÷ "+p))
		align = append(align, "---:")
	}
	writeRow(b, header)
	writeRow(b, align)

	for _, c := range cases {
		row := []string{escapeCell(c)}
		for _, p := range peers {
			row = append(row, cellText(cells[[2]string{c, p}], m, maxReps, note))
		}
		for _, p := range ratios {
			row = append(row, ratioText(cells[[2]string{c, opts.Subject}], cells[[2]string{c, p}]))
		}
		writeRow(b, row)
	}
	b.WriteString("\n")
	if len(notes) > 0 {
		for i, n := range notes {
			fmt.Fprintf(b, "- [%d] %s\n", i+1, n)
		}
		b.WriteString("\n")
	}
}

// cellText renders one peer's aggregate in one case (see Markdown); note
// registers a footnote and returns its marker.
func cellText(c cell, m Metric, maxReps int, note func(string) string) string {
	var refs []string
	switch {
	case c.runs == 0:
		return cellAbsent
	case c.allSkipped():
		for _, s := range c.skipped {
			refs = appendNew(refs, note("skipped: "+s))
		}
		return cellSkipped + " " + strings.Join(refs, "")
	}
	for _, e := range c.failures {
		refs = appendNew(refs, note("failed: "+e))
	}
	if c.allFailed() {
		return cellFailed + " " + strings.Join(refs, "")
	}
	v, ok := c.median()
	if !ok {
		return strings.TrimSpace(cellAbsent + " " + strings.Join(refs, ""))
	}
	s := m.FormatValue(v)
	if n := len(c.values); n < maxReps {
		s += fmt.Sprintf(" (%d/%d)", n, maxReps)
	}
	if len(refs) > 0 {
		s += " " + strings.Join(refs, "")
	}
	return s
}

// ratioText is subject's median over other's, when both exist and the
// quotient is a number.
func ratioText(subject, other cell) string {
	a, ok1 := subject.median()
	b, ok2 := other.median()
	if !ok1 || !ok2 || b == 0 {
		return cellAbsent
	}
	r := a / b
	if math.IsNaN(r) || math.IsInf(r, 0) {
		return cellAbsent
	}
	return fmt.Sprintf("%.2f×", r)
}

func writeRow(b *strings.Builder, cells []string) {
	b.WriteString("| ")
	b.WriteString(strings.Join(cells, " | "))
	b.WriteString(" |\n")
}

// escapeCell keeps text inside one Markdown table cell.
func escapeCell(s string) string {
	return strings.ReplaceAll(oneLine(s, 0), "|", `\|`)
}

// oneLine collapses all whitespace runs (newlines included) to single
// spaces and, if limit > 0, shortens the result to limit runes.
func oneLine(s string, limit int) string {
	s = strings.Join(strings.Fields(s), " ")
	if r := []rune(s); limit > 0 && len(r) > limit {
		s = string(r[:limit-1]) + "…"
	}
	return s
}

func appendNew(xs []string, x string) []string {
	if slices.Contains(xs, x) {
		return xs
	}
	return append(xs, x)
}
