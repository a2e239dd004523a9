// Command flightline-bench answers "how does flightline compare, on this
// machine, in one run": it builds testnet namespaces joined by veth pairs and
// runs flightline (on each datapath) and the transports a user would pick
// instead — kernel TCP, quic-go, kcp-go — plus raw UDP and AF_XDP blasts as
// ceilings, through bulk, loss, ping-pong, stream-abort and connection-scale
// scenarios. Every run is bounded in bytes and time and verifies what arrived.
//
// Each side of a run is its own process (this binary re-executed inside a
// namespace, optionally pinned to a CPU); see internal/runner. Results go to
// -out: results.jsonl (a record per run), results.md (tables of medians and
// ratios), goodput.png, latency.png, abort.png, and pprof profiles on request.
//
//	sudo go run ./cmd/flightline-bench                 # quick plan, ~4 min
//	sudo go run ./cmd/flightline-bench -plan full      # the whole matrix
//	sudo go run ./cmd/flightline-bench -list -plan full
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	_ "github.com/flightline/flightline/bench/internal/peers/all" // registers every peer
	"github.com/flightline/flightline/bench/internal/runner"
)

func main() {
	if runner.IsChild() {
		runner.ChildMain()
	}
	o, err := parseArgs(os.Args[1:])
	if err != nil {
		fmt.Fprintln(os.Stderr, "flightline-bench:", err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, o, os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "flightline-bench:", err)
		os.Exit(1)
	}
}
