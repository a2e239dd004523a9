package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// Result is one measurement. Goodput counts payload bytes the receiver got
// (not headers, not retransmissions) over the wall time from the first write
// to the last byte read.
type Result struct {
	Peer       string  `json:"peer"`
	Streams    int     `json:"streams"`
	Bytes      int64   `json:"bytes"`
	Seconds    float64 `json:"seconds"`
	MBps       float64 `json:"goodput_mbps"` // 10^6 bytes/s
	CPUSeconds float64 `json:"cpu_seconds"`  // whole process: sender and receiver
	Loss       float64 `json:"loss,omitempty"`
	Notes      string  `json:"notes,omitempty"`
	Profile    string  `json:"cpu_profile,omitempty"`
	Error      string  `json:"error,omitempty"`
}

func newResult(m measurement) Result {
	r := Result{Bytes: m.bytes, Seconds: m.elapsed.Seconds(), CPUSeconds: m.cpu.Seconds()}
	if r.Seconds > 0 {
		r.MBps = float64(m.bytes) / r.Seconds / 1e6
	}
	return r
}

// Label names the measurement in tables and the chart.
func (r Result) Label() string {
	if r.Peer == peerRaw {
		return r.Peer
	}
	unit := "streams"
	if r.Peer == peerTCP {
		unit = "conns"
	}
	if r.Streams == 1 {
		unit = strings.TrimSuffix(unit, "s")
	}
	return fmt.Sprintf("%s %d %s", r.Peer, r.Streams, unit)
}

// CPUPerGB is process CPU seconds per 10^9 payload bytes delivered.
func (r Result) CPUPerGB() float64 {
	if r.Bytes == 0 {
		return 0
	}
	return r.CPUSeconds / (float64(r.Bytes) / 1e9)
}

func (r Result) summary() string {
	s := fmt.Sprintf("%-24s %8.1f MB/s  %6.2f s  %5.2f CPU-s/GB", r.Label(), r.MBps, r.Seconds, r.CPUPerGB())
	if r.Error != "" {
		s += "  ERROR: " + r.Error
	}
	return s
}

// Report is everything one run of the command measured, and on what.
type Report struct {
	Time      string   `json:"time"`
	GoVersion string   `json:"go_version"`
	GOOS      string   `json:"goos"`
	GOARCH    string   `json:"goarch"`
	NumCPU    int      `json:"num_cpu"`
	SizeMiB   int      `json:"size_mib"`
	Results   []Result `json:"results"`
}

// ceiling is the raw UDP goodput, or 0 when it was not measured.
func (rep *Report) ceiling() float64 {
	for _, r := range rep.Results {
		if r.Peer == peerRaw && r.Error == "" {
			return r.MBps
		}
	}
	return 0
}

// markdown renders the results as a table, with each goodput also as a
// fraction of the raw UDP ceiling when that was measured.
func (rep *Report) markdown() string {
	var b strings.Builder
	fmt.Fprintf(&b, "Loopback bulk goodput, %d MiB per measurement, %s %s/%s, %d CPUs, %s.\n\n",
		rep.SizeMiB, rep.GoVersion, rep.GOOS, rep.GOARCH, rep.NumCPU, rep.Time)
	b.WriteString("| Peer | Goodput MB/s | vs raw UDP | Seconds | CPU s/GB | Notes |\n")
	b.WriteString("|---|---:|---:|---:|---:|---|\n")
	ceil := rep.ceiling()
	for _, r := range rep.Results {
		ratio := "–"
		if ceil > 0 {
			ratio = fmt.Sprintf("%.2f", r.MBps/ceil)
		}
		notes := r.Notes
		if r.Error != "" {
			notes = "**error:** " + r.Error + "; " + notes
		}
		fmt.Fprintf(&b, "| %s | %.1f | %s | %.2f | %.2f | %s |\n",
			r.Label(), r.MBps, ratio, r.Seconds, r.CPUPerGB(), strings.ReplaceAll(notes, "|", `\|`))
	}
	return b.String()
}

// write stores results.json, results.md and goodput.png in dir.
func (rep *Report) write(dir string) error {
	js, err := json.MarshalIndent(rep, "", "  ")
	if err != nil {
		return fmt.Errorf("encode results: %w", err)
	}
	var png bytes.Buffer
	if err := drawChart(&png, rep); err != nil {
		return fmt.Errorf("draw chart: %w", err)
	}
	for name, data := range map[string][]byte{
		"results.json": append(js, '\n'),
		"results.md":   []byte(rep.markdown()),
		"goodput.png":  png.Bytes(),
	} {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
			return fmt.Errorf("write results: %w", err)
		}
	}
	return nil
}
