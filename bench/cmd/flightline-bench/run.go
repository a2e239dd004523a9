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
// runs failed; it then returns an error naming how many failed.
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
	var failed []string
	for _, r := range recs {
		if r.Error != "" {
			failed = append(failed, fmt.Sprintf("%s/%s/%s rep %d: %s", r.Scenario, r.Case, r.Peer, r.Rep, r.Error))
		}
	}
	if execErr != nil {
		failed = append(failed, fmt.Sprintf("stopped early: %v", execErr))
	}
	if len(failed) > 0 {
		return fmt.Errorf("%d of %d runs failed:\n  %s", len(failed), len(recs), strings.Join(failed, "\n  "))
	}
	return nil
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
