package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/flightline/flightline/bench/internal/matrix"
	"github.com/flightline/flightline/bench/internal/report"
	"github.com/flightline/flightline/testnet"
)

// run executes the plan o describes and writes every output, even when some
// runs failed. It returns an error only when flightline or the harness
// failed (see conclude); other peers' failures are listed on stdout.
func run(ctx context.Context, o options, stdout, stderr io.Writer) error {
	cases, err := matrix.Build(o.Plan, o.Sizes)
	if err != nil {
		return err
	}
	cases = matrix.Filter(cases, o.Scenarios, o.Peers)
	if len(cases) == 0 {
		return errors.New("the filters leave nothing to run")
	}
	if o.List {
		printPlan(stdout, cases, o.Reps)
		return nil
	}
	if err := testnet.Privileged(); err != nil {
		return fmt.Errorf("the benchmark builds network namespaces: %w", err)
	}
	if err := os.MkdirAll(o.Out, 0o755); err != nil {
		return fmt.Errorf("create -out: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, o.Timeout)
	defer cancel()
	started := time.Now()
	recs, execErr := matrix.Execute(ctx, cases, matrix.Options{
		Reps: o.Reps, Out: o.Out, CPUProfile: o.CPUProfile, MemProfile: o.MemProfile,
		Log: stderr, Verbose: o.Verbose, Abort: runAbort, KeyGen: keysFor,
	})
	if err := writeOutputs(o, recs, started, stdout); err != nil {
		return err
	}
	return conclude(recs, execErr, stdout)
}

// conclude decides the command's outcome from the records and Execute's
// error. A failed run of a flightline peer (matrix.Flightline), a run the
// harness itself failed (Record.Harness) and a plan stopped early fail the
// command. Another peer's failed run is a finding about that peer, not about
// flightline or the harness: it stays footnoted in the tables and is listed
// on w, and the command still succeeds — a quic-go run timing out on this
// machine must not turn `make bench` red.
func conclude(recs []report.Record, execErr error, w io.Writer) error {
	var ours, theirs []string
	for _, r := range recs {
		if r.Error == "" {
			continue
		}
		line := fmt.Sprintf("%s/%s/%s rep %d: %s", r.Scenario, r.Case, r.Peer, r.Rep,
			strings.ReplaceAll(strings.TrimSpace(r.Error), "\n", "; ")) // one line per run
		switch {
		case r.Harness:
			ours = append(ours, "harness: "+line)
		case matrix.Flightline(r.Peer):
			ours = append(ours, line)
		default:
			theirs = append(theirs, line)
		}
	}
	if len(theirs) > 0 {
		fmt.Fprintf(w, "\n%d of %d runs of other peers failed (footnoted in the tables; not a failure of this command):\n  %s\n",
			len(theirs), len(recs), strings.Join(theirs, "\n  "))
	}
	if len(ours) == 0 && execErr == nil {
		return nil
	}
	msg := fmt.Sprintf("%d of %d runs failed in flightline or the harness", len(ours), len(recs))
	if execErr != nil {
		ours = append(ours, fmt.Sprintf("stopped early: %v", execErr))
	}
	return fmt.Errorf("%s:\n  %s", msg, strings.Join(ours, "\n  "))
}

// writeOutputs writes results.jsonl, results.md and the plots into o.Out
// and prints the tables.
func writeOutputs(o options, recs []report.Record, started time.Time, stdout io.Writer) error {
	if err := report.WriteJSONL(filepath.Join(o.Out, "results.jsonl"), recs); err != nil {
		return err
	}
	var plots []string
	for _, p := range []struct {
		file string
		fn   func([]report.Record, string) error
	}{{"goodput.png", report.PlotGoodput}, {"goodput_vs_loss.png", report.PlotGoodputVsLoss}, {"cc_timeseries.png", report.PlotCC}, {"latency.png", report.PlotLatency}, {"abort.png", report.PlotAbort}} {
		err := p.fn(recs, filepath.Join(o.Out, p.file))
		switch {
		case err == nil:
			plots = append(plots, p.file)
		case errors.Is(err, report.ErrNoData):
		default:
			return fmt.Errorf("plot %s: %w", p.file, err)
		}
	}
	md := header(o, started, time.Since(started), plots) + report.Markdown(recs, report.TableOptions{
		PeerOrder: append(append([]string{}, matrix.AllPeers...), matrix.SubjectNoRelease), Subject: matrix.Subject, RatioPeers: matrix.RatioPeers,
	})
	if err := os.WriteFile(filepath.Join(o.Out, "results.md"), []byte(md), 0o644); err != nil {
		return fmt.Errorf("write results.md: %w", err)
	}
	fmt.Fprintf(stdout, "%s\nwritten to %s\n", md, o.Out)
	return nil
}

func printPlan(w io.Writer, cases []matrix.Case, reps int) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "SCENARIO\tCASE\tPEERS\tNETWORK\tCPUS (server/client)")
	runs := 0
	for _, c := range cases {
		net := "veth"
		if c.Net.AtoB.Loss > 0 {
			net = fmt.Sprintf("veth + hop, loss %g%%", c.Net.AtoB.Loss*100)
		}
		if c.Scenario == matrix.ScenarioAbort {
			net = "veth + hop, delay + rate (in-process)"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", c.Scenario, c.Name, strings.Join(c.Peers, ","), net, cpus(c))
		runs += len(c.Peers) * reps
	}
	tw.Flush()
	fmt.Fprintf(w, "%d runs (%d repetitions)\n", runs, reps)
}

func cpus(c matrix.Case) string {
	f := func(n int) string {
		if n < 0 {
			return "any"
		}
		return fmt.Sprint(n)
	}
	return f(c.ServerCPU) + "/" + f(c.ClientCPU)
}
