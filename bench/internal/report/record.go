// Package report turns benchmark records into the artifacts a reader looks
// at: a JSON Lines file with every run (the raw data, re-readable), Markdown
// tables of medians and ratios, and PNG plots of goodput, latency
// distributions and the abort time series.
//
// The orchestrator produces one Record per run of one peer in one case; this
// package never runs anything. It aggregates repetitions with medians (see
// package stats) because a single slow repetition on a shared machine should
// not move the headline number, and it always shows why a value is missing:
// a skipped run ("n/a") and a failed one ("FAIL") are different findings.
package report

import "time"

// Record is one benchmark run of one peer in one case.
type Record struct {
	Seq      int       `json:"seq"` // order the run happened in
	Rep      int       `json:"rep"` // repetition index, 0-based
	Time     time.Time `json:"time"`
	Scenario string    `json:"scenario"` // "bulk", "loss", "ping", "abort", "scale"
	Case     string    `json:"case"`     // human-readable variant, e.g. "1 stream, pinned, offloads off"; unique within Scenario
	Peer     string    `json:"peer"`     // e.g. "flightline-udp", "tcp", "quic-go", "kcp", "udp-gso-blast"
	// Metrics by name (see the Metric table). Absent = not measured.
	Metrics map[string]float64 `json:"metrics"`
	// RTTs are the ping round-trip times in microseconds (ping only), for the latency plot.
	RTTs []float64 `json:"rtts_us,omitempty"`
	// Series is the abort scenario's time series (abort only).
	Series []Sample `json:"series,omitempty"`
	// CC is the sender's congestion-control time series (flightline bulk
	// runs), for the controller plot.
	CC       []CCSample `json:"cc,omitempty"`
	Info     string     `json:"info,omitempty"`     // peer details (datapath, offloads)
	Profiles []string   `json:"profiles,omitempty"` // pprof files written for this run
	Error    string     `json:"error,omitempty"`    // the run failed (metrics may be partial/absent)
	Skipped  string     `json:"skipped,omitempty"`  // the run could not happen here, with the reason ("not available: ...", "n/a")
	// Harness says Error is the harness's own failure (building the network,
	// making keys, starting a process), not the peer's: the benchmark is
	// broken, whichever peer the run was for.
	Harness bool `json:"harness,omitempty"`
}

// CCSample is one point of a sender's congestion-control time series.
type CCSample struct {
	T          time.Duration `json:"t_ns"`
	Delivered  uint64        `json:"delivered"`  // bytes acknowledged so far
	PacingRate float64       `json:"pacing_Bps"` // bytes/s
	Bandwidth  float64       `json:"bw_Bps"`     // bandwidth estimate (BBR max_bw), bytes/s
	Cwnd       int64         `json:"cwnd"`
	Flight     int64         `json:"flight"`
	SRTT       time.Duration `json:"srtt_ns"`
	State      string        `json:"state,omitempty"`
}

// Sample is one point of a time series, T relative to the event of interest (the abort).
type Sample struct {
	T       time.Duration `json:"t_ns"`
	Flight  int64         `json:"flight"`  // bytes in flight (sender)
	Cwnd    int64         `json:"cwnd"`    // congestion window (sender)
	Goodput float64       `json:"goodput"` // MB/s delivered on stream B over the preceding sample interval
	Variant string        `json:"variant"` // e.g. "release on" / "release off"
}

// OK reports whether the run happened and succeeded, i.e. whether its
// metrics count towards medians. A skipped run never counts, and a failed
// run's partial metrics do not either: they describe a different experiment
// (one cut short) from the successful repetitions.
func (r *Record) OK() bool {
	return r.Skipped == "" && r.Error == ""
}

// Value returns the metric called name and whether the record has it.
func (r *Record) Value(name string) (float64, bool) {
	v, ok := r.Metrics[name]
	return v, ok
}
