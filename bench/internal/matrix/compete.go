package matrix

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/flightline/flightline/bench/internal/peer"
	"github.com/flightline/flightline/bench/internal/report"
	"github.com/flightline/flightline/bench/internal/runner"
)

// runCompete runs the two flows of pair "a+b" at the same time over c's
// network: two independent client/server process pairs on different ports,
// started together, each sending c.Spec.Bytes on one stream. Goodput is
// each flow's over its own transfer, so the flow that finishes first had
// the link shared all along and the other had it alone for the rest: the
// shares (each flow's goodput over the sum) understate a winner's advantage
// rather than exaggerate it.
func (e *executor) runCompete(ctx context.Context, c Case, pair string, rep int) report.Record {
	r := report.Record{Rep: rep, Time: time.Now().UTC(), Scenario: c.Scenario, Case: c.Name, Peer: pair, Metrics: map[string]float64{}}
	names := strings.Split(pair, "+")
	if len(names) != 2 {
		r.Error = fmt.Sprintf("compete: peer %q is not a pair a+b", pair)
		return r
	}
	n, err := e.network(c.Net)
	if err != nil {
		r.Error = err.Error()
		return r
	}
	var (
		wg      sync.WaitGroup
		results [2]struct {
			cli, srv peer.Result
			err      error
		}
	)
	deadline := time.Now().Add(c.Timeout)
	for i, name := range names {
		s := c.Spec
		s.Peer = name
		s.Seed = uint64(time.Now().UnixNano()) + uint64(i)
		s.Deadline = deadline
		e.port++
		s.Server = netip.AddrPortFrom(n.B.Addr, 7000+e.port%2000)
		if e.o.KeyGen != nil {
			if s.Keys, err = e.o.KeyGen(name); err != nil {
				r.Error = fmt.Sprintf("keys: %v", err)
				return r
			}
		}
		opts := runner.Options{ServerCPU: c.ServerCPU, ClientCPU: c.ClientCPU}
		if e.o.Verbose {
			opts.Log = prefixWriter{e.log, fmt.Sprintf("%s#%d", name, i+1)}
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			res := &results[i]
			res.cli, res.srv, res.err = runner.Run(ctx, n, s, opts)
		}()
	}
	wg.Wait()
	var errs []error
	var g [2]float64
	for i := range results {
		res := &results[i]
		if res.err != nil {
			errs = append(errs, fmt.Errorf("flow %d (%s): %w", i+1, names[i], res.err))
			continue
		}
		if secs := res.cli.Phase.Seconds(); secs > 0 && res.srv.Bytes > 0 {
			g[i] = float64(res.srv.Bytes) / secs / 1e6
		}
	}
	if err := errors.Join(errs...); err != nil {
		r.Error = err.Error()
	}
	if g[0] > 0 && g[1] > 0 {
		m := r.Metrics
		m[report.MetricGoodput] = g[0] + g[1]
		m[report.MetricGoodputA], m[report.MetricGoodputB] = g[0], g[1]
		m[report.MetricShareA] = 100 * g[0] / (g[0] + g[1])
		m[report.MetricShareB] = 100 * g[1] / (g[0] + g[1])
	}
	r.Info = fmt.Sprintf("first=%s second=%s", names[0], names[1])
	return r
}
