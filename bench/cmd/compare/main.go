// Command compare measures bulk goodput over loopback, in one process and one
// run, for flightline and the things it is judged against: the raw UDP
// datapath ceiling (udplink.Blast, no protocol), kernel TCP and quic-go.
//
// Every measurement moves the same number of bytes, sender and receiver in
// this process, so CPU time per GB is comparable too. Results go to -out as
// results.json, results.md and goodput.png, plus a CPU profile of each
// flightline run. Everything is bounded: each measurement by -run-timeout,
// the whole command by -timeout.
//
//	cd bench && go run ./cmd/compare -size 256 -streams 1,8
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"
)

// options are the command's flags; see newFlagSet for defaults.
type options struct {
	SizeMiB    int
	Streams    []int
	Peers      []string
	Out        string
	Timeout    time.Duration // whole command
	RunTimeout time.Duration // one measurement
	Profile    bool
}

var allPeers = []string{peerFlightline, peerRaw, peerTCP, peerQUIC}

func main() {
	o, err := parseFlags(os.Args[1:])
	if err != nil {
		fmt.Fprintln(os.Stderr, "compare:", err)
		os.Exit(2)
	}
	if err := run(context.Background(), o, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "compare:", err)
		os.Exit(1)
	}
}

func parseFlags(args []string) (options, error) {
	fs := flag.NewFlagSet("compare", flag.ContinueOnError)
	o := options{}
	fs.IntVar(&o.SizeMiB, "size", 256, "MiB moved by each measurement")
	streams := fs.String("streams", "1,8", "comma-separated stream counts (TCP: connections)")
	peers := fs.String("peers", strings.Join(allPeers, ","), "comma-separated subset of "+strings.Join(allPeers, ","))
	fs.StringVar(&o.Out, "out", "results", "directory for results.json, results.md, goodput.png and profiles")
	fs.DurationVar(&o.Timeout, "timeout", 55*time.Second, "bound on the whole command")
	fs.DurationVar(&o.RunTimeout, "run-timeout", 15*time.Second, "bound on one measurement")
	fs.BoolVar(&o.Profile, "profile", true, "write a CPU profile of each flightline run")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if o.SizeMiB <= 0 || o.SizeMiB > 64<<10 {
		return o, fmt.Errorf("-size %d out of range 1..65536 MiB", o.SizeMiB)
	}
	for f := range strings.SplitSeq(*streams, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 || n > 64 {
			return o, fmt.Errorf("-streams: %q is not a count in 1..64", f)
		}
		o.Streams = append(o.Streams, n)
	}
	for f := range strings.SplitSeq(*peers, ",") {
		f = strings.TrimSpace(f)
		if !slices.Contains(allPeers, f) {
			return o, fmt.Errorf("-peers: unknown peer %q (want %s)", f, strings.Join(allPeers, ","))
		}
		o.Peers = append(o.Peers, f)
	}
	return o, nil
}

// run performs every measurement in order, writes the results even when
// some failed, and then reports the failures.
func run(ctx context.Context, o options, log io.Writer) error {
	ctx, cancel := context.WithTimeout(ctx, o.Timeout)
	defer cancel()
	if err := os.MkdirAll(o.Out, 0o755); err != nil {
		return fmt.Errorf("create output directory: %w", err)
	}
	rep := Report{
		Time:      time.Now().UTC().Format(time.RFC3339),
		GoVersion: runtime.Version(),
		GOOS:      runtime.GOOS,
		GOARCH:    runtime.GOARCH,
		NumCPU:    runtime.NumCPU(),
		SizeMiB:   o.SizeMiB,
	}
	size := int64(o.SizeMiB) << 20
	var failed []error
	for _, peer := range o.Peers {
		counts := o.Streams
		if peer == peerRaw {
			counts = []int{1} // a blast has no streams
		}
		for _, n := range counts {
			rctx, rcancel := context.WithTimeout(ctx, o.RunTimeout)
			profile := ""
			if peer == peerFlightline && o.Profile {
				profile = fmt.Sprintf("%s/flightline-%dstream.cpu.pprof", o.Out, n)
			}
			r, err := measurePeer(rctx, peer, n, size, profile)
			rcancel()
			r.Peer, r.Streams = peer, n
			if err != nil {
				r.Error = err.Error()
				failed = append(failed, fmt.Errorf("%s, %d streams: %w", peer, n, err))
			}
			fmt.Fprintln(log, r.summary())
			rep.Results = append(rep.Results, r)
		}
	}
	if err := rep.write(o.Out); err != nil {
		return err
	}
	fmt.Fprintf(log, "\n%s\nwritten to %s\n", rep.markdown(), o.Out)
	return errors.Join(failed...)
}

func measurePeer(ctx context.Context, peer string, streams int, size int64, profile string) (Result, error) {
	switch peer {
	case peerFlightline:
		return runFlightline(ctx, streams, size, profile)
	case peerRaw:
		return runRaw(ctx, size)
	case peerTCP:
		return runTCP(ctx, streams, size)
	case peerQUIC:
		return runQUIC(ctx, streams, size)
	}
	return Result{}, fmt.Errorf("unknown peer %q", peer)
}
