package runner

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"

	"github.com/flightline/flightline/bench/internal/peer"
)

// IsChild reports whether this process was started by Run as one side of a
// benchmark. main (or TestMain) must then call ChildMain and nothing else.
func IsChild() bool { return os.Getenv(envChild) == "1" }

// ChildMain runs the side described by the environment and exits: status 0
// when it reported a result without error, 1 otherwise. It never returns.
func ChildMain() {
	r, err := runChild()
	if err != nil {
		r.Error = err.Error()
		fmt.Fprintln(os.Stderr, "error:", err)
	}
	js, jerr := json.Marshal(r)
	if jerr != nil {
		fmt.Fprintln(os.Stderr, "encode result:", jerr)
		os.Exit(1)
	}
	fmt.Fprintf(os.Stdout, "%s%s\n", resultLine, js)
	if err != nil {
		os.Exit(1)
	}
	os.Exit(0)
}

func runChild() (peer.Result, error) {
	var s peer.Spec
	if err := json.Unmarshal([]byte(os.Getenv(envSpec)), &s); err != nil {
		return peer.Result{}, fmt.Errorf("decode spec: %w", err)
	}
	if err := s.Validate(); err != nil {
		return peer.Result{Side: s.Side}, err
	}
	p, err := peer.Lookup(s.Peer)
	if err != nil {
		return peer.Result{Side: s.Side}, err
	}
	ctx, cancel := context.WithDeadline(context.Background(), s.Deadline)
	defer cancel()
	var r peer.Result
	switch s.Side {
	case peer.ServerSide:
		readied := false
		r, err = p.Serve(ctx, &s, func() {
			if !readied {
				readied = true
				fmt.Fprintln(os.Stdout, readyLine)
			}
		})
	case peer.ClientSide:
		r, err = p.Run(ctx, &s)
	default:
		err = fmt.Errorf("spec: unknown side %q", s.Side)
	}
	r.Side = s.Side
	if errors.Is(err, context.DeadlineExceeded) {
		err = fmt.Errorf("%w (deadline %s)", err, s.Deadline.Format("15:04:05.000"))
	}
	return r, err
}

func netipAddrPort(a netip.Addr, port uint16) netip.AddrPort { return netip.AddrPortFrom(a, port) }
