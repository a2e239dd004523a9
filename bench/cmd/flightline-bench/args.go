package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/flightline/flightline/bench/internal/matrix"
)

// options are the command's flags after validation.
type options struct {
	Plan       string
	Reps       int
	Scenarios  []string // nil = all of the plan
	Peers      []string // nil = all of the plan
	Sizes      matrix.Sizes
	Out        string
	CPUProfile bool
	MemProfile bool
	Timeout    time.Duration
	List       bool
	Verbose    bool
	Args       []string // as given, for the report's "reproduce with" line
}

func parseArgs(args []string) (options, error) {
	fs := flag.NewFlagSet("flightline-bench", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	var o options
	o.Args = args
	fs.StringVar(&o.Plan, "plan", matrix.PlanQuick, "which matrix: quick (make bench), full (make bench-full) or smoke (CI)")
	fs.IntVar(&o.Reps, "reps", 0, "repetitions of every run (default 3; smoke 1); medians are quoted")
	scen := fs.String("scenarios", "", "comma-separated subset of "+strings.Join(matrix.Scenarios, ","))
	peers := fs.String("peers", "", "comma-separated subset of peers (see -list)")
	bulk := fs.String("bytes", "", "bytes per bulk run, e.g. 64MiB (default by plan)")
	loss := fs.String("loss-bytes", "", "bytes per run under 1% loss; 5% moves half (default by plan)")
	msgs := fs.Int("messages", 0, "round trips per ping run (default by plan)")
	conns := fs.Int("conns", 0, "connections per scale run (default by plan)")
	runTimeout := fs.Duration("run-timeout", 0, "bound on one run (default by plan)")
	fs.StringVar(&o.Out, "out", "results", "directory for results.jsonl, results.md, plots and profiles")
	fs.BoolVar(&o.CPUProfile, "cpuprofile", false, "write a pprof CPU profile of every run's measured phase (both sides) under -out/profiles")
	fs.BoolVar(&o.MemProfile, "memprofile", false, "write a pprof heap profile at the end of every run (both sides) under -out/profiles")
	fs.DurationVar(&o.Timeout, "timeout", 0, "bound on the whole command (default 10m; full 3h)")
	fs.BoolVar(&o.List, "list", false, "print the plan and exit")
	fs.BoolVar(&o.Verbose, "v", false, "forward the children's stderr")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			var b strings.Builder
			fs.SetOutput(&b)
			fs.PrintDefaults()
			return o, fmt.Errorf("usage:\n%s", b.String())
		}
		return o, err
	}
	if fs.NArg() > 0 {
		return o, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	switch o.Plan {
	case matrix.PlanQuick, matrix.PlanFull, matrix.PlanSmoke:
	default:
		return o, fmt.Errorf("-plan %q: want quick, full or smoke", o.Plan)
	}
	o.Sizes = matrix.DefaultSizes(o.Plan)
	switch {
	case o.Reps == 0 && o.Plan == matrix.PlanSmoke:
		o.Reps = 1
	case o.Reps == 0:
		o.Reps = 3
	case o.Reps < 1 || o.Reps > 100:
		return o, fmt.Errorf("-reps %d outside 1..100", o.Reps)
	}
	var err error
	if o.Scenarios, err = list(*scen, matrix.Scenarios, "-scenarios"); err != nil {
		return o, err
	}
	if o.Peers, err = list(*peers, append(slices.Clone(matrix.AllPeers), matrix.SubjectNoRelease), "-peers"); err != nil {
		return o, err
	}
	if *bulk != "" {
		if o.Sizes.BulkBytes, err = parseSize(*bulk); err != nil {
			return o, fmt.Errorf("-bytes: %w", err)
		}
	}
	if *loss != "" {
		if o.Sizes.LossBytes, err = parseSize(*loss); err != nil {
			return o, fmt.Errorf("-loss-bytes: %w", err)
		}
	}
	if *msgs != 0 {
		if *msgs < 1 || *msgs > 10_000_000 {
			return o, fmt.Errorf("-messages %d outside 1..10000000", *msgs)
		}
		o.Sizes.PingMessages = *msgs
	}
	if *conns != 0 {
		if *conns < 1 || *conns > 100_000 {
			return o, fmt.Errorf("-conns %d outside 1..100000", *conns)
		}
		o.Sizes.ScaleConns = *conns
	}
	if *runTimeout != 0 {
		if *runTimeout < time.Second {
			return o, fmt.Errorf("-run-timeout %v: at least 1s", *runTimeout)
		}
		o.Sizes.RunTimeout = *runTimeout
	}
	if o.Timeout == 0 {
		o.Timeout = 10 * time.Minute
		if o.Plan == matrix.PlanFull {
			o.Timeout = 3 * time.Hour
		}
	}
	if o.Timeout < time.Second {
		return o, fmt.Errorf("-timeout %v: at least 1s", o.Timeout)
	}
	if o.Out == "" {
		return o, errors.New("-out must name a directory")
	}
	return o, nil
}

// list splits a comma-separated flag value and checks every item is known.
// Empty means "no filter" (nil).
func list(v string, known []string, flagName string) ([]string, error) {
	if strings.TrimSpace(v) == "" {
		return nil, nil
	}
	var out []string
	for f := range strings.SplitSeq(v, ",") {
		f = strings.TrimSpace(f)
		if !slices.Contains(known, f) {
			return nil, fmt.Errorf("%s: unknown %q (want one of %s)", flagName, f, strings.Join(known, ", "))
		}
		if !slices.Contains(out, f) {
			out = append(out, f)
		}
	}
	return out, nil
}

// parseSize reads "4096", "64KiB", "256MiB", "1GiB" (also K/M/G, KB/MB/GB
// as powers of 1024: these are buffer sizes, not rates).
func parseSize(s string) (int64, error) {
	t := strings.TrimSpace(s)
	mult := int64(1)
	for _, u := range []struct {
		suffix string
		mult   int64
	}{{"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}, {"GB", 1 << 30}, {"MB", 1 << 20}, {"KB", 1 << 10}, {"G", 1 << 30}, {"M", 1 << 20}, {"K", 1 << 10}, {"B", 1}} {
		if rest, ok := strings.CutSuffix(t, u.suffix); ok {
			t, mult = strings.TrimSpace(rest), u.mult
			break
		}
	}
	n, err := strconv.ParseInt(t, 10, 64)
	if err != nil || n <= 0 {
		return 0, fmt.Errorf("%q is not a positive size", s)
	}
	if n > (64<<30)/mult {
		return 0, fmt.Errorf("%q is more than 64GiB", s)
	}
	if n*mult < 1024 {
		return 0, fmt.Errorf("%q is too small (at least 1KiB)", s)
	}
	return n * mult, nil
}
