package matrix

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/flightline/flightline/bench/internal/peer"
	"github.com/flightline/flightline/bench/internal/report"
	"github.com/flightline/flightline/bench/internal/runner"
	"github.com/flightline/flightline/testnet"
)

// Options control one execution of a plan.
type Options struct {
	// Reps is how often every (case, peer) runs. Runs of one case alternate
	// between peers (A B C, then C B A, ...) so slow drifts of the machine
	// spread over all of them.
	Reps int
	// Out is the directory for profiles; CPUProfile and MemProfile ask for
	// pprof files of every run (both sides) there.
	Out                    string
	CPUProfile, MemProfile bool
	// Log receives progress lines and the children's stderr (Verbose).
	Log     io.Writer
	Verbose bool
	// Abort runs one rep of the abort scenario for one of its peers
	// (Subject or SubjectNoRelease) in this process — it changes impairment
	// mid-run, which needs the network's owner; nil records it as skipped.
	Abort func(ctx context.Context, peer string, rep int) (report.Record, error)
	// KeyGen makes per-run key material for a peer (flightline's static
	// keys); nil or a nil map for peers that need none.
	KeyGen func(peer string) (map[string]string, error)
}

// Execute runs cases and returns one record per run in the order they ran.
// It stops early only when ctx ends; a failed run is a record with Error.
func Execute(ctx context.Context, cases []Case, o Options) ([]report.Record, error) {
	if o.Reps < 1 {
		return nil, fmt.Errorf("reps %d < 1", o.Reps)
	}
	logw := o.Log
	if logw == nil {
		logw = io.Discard
	}
	e := &executor{o: o, log: logw, nets: map[string]*testnet.Network{}, xdpErr: map[string]error{}}
	defer e.closeNets()
	var recs []report.Record
	for _, c := range cases {
		for rep := range o.Reps {
			order := slices.Clone(c.Peers)
			if rep%2 == 1 {
				slices.Reverse(order)
			}
			for _, p := range order {
				if err := ctx.Err(); err != nil {
					return recs, err
				}
				r := e.runOne(ctx, c, p, rep)
				r.Seq = len(recs)
				recs = append(recs, r)
				fmt.Fprintln(logw, report.Summary([]report.Record{r}))
			}
		}
	}
	return recs, nil
}

type executor struct {
	o      Options
	log    io.Writer
	nets   map[string]*testnet.Network
	xdpErr map[string]error // by network key: AF_XDP unavailable there
	port   uint16
}

func (e *executor) closeNets() {
	for k, n := range e.nets {
		if err := n.Close(); err != nil {
			fmt.Fprintf(e.log, "close network %s: %v\n", k, err)
		}
	}
}

func netKey(cfg testnet.Config) string { return fmt.Sprintf("%+v", cfg) }

// network returns the (shared) network for cfg, building it on first use.
func (e *executor) network(cfg testnet.Config) (*testnet.Network, error) {
	k := netKey(cfg)
	if n := e.nets[k]; n != nil {
		return n, nil
	}
	n, err := testnet.Setup(cfg)
	if err != nil {
		return nil, fmt.Errorf("build network: %w", err)
	}
	e.nets[k] = n
	e.xdpErr[k] = probeXDP(n)
	return n, nil
}

func (e *executor) runOne(ctx context.Context, c Case, p string, rep int) report.Record {
	r := report.Record{Rep: rep, Time: time.Now().UTC(), Scenario: c.Scenario, Case: c.Name, Peer: p, Metrics: map[string]float64{}}
	if c.Scenario == ScenarioAbort {
		if e.o.Abort == nil {
			r.Skipped = "n/a: abort scenario not wired"
			return r
		}
		ar, err := e.o.Abort(ctx, p, rep)
		ar.Rep, ar.Time, ar.Scenario, ar.Case, ar.Peer = rep, r.Time, c.Scenario, c.Name, p
		if err != nil {
			ar.Error = err.Error()
		}
		return ar
	}
	if c.Scenario == ScenarioCompete {
		return e.runCompete(ctx, c, p, rep)
	}
	n, err := e.network(c.Net)
	if err != nil {
		r.Error, r.Harness = err.Error(), true
		return r
	}
	if xerr := e.xdpErr[netKey(c.Net)]; xerr != nil && needsXDP(p) {
		r.Skipped = "not available: " + xerr.Error()
		return r
	}
	s := c.Spec
	s.Peer = p
	s.Seed = uint64(time.Now().UnixNano())
	s.Deadline = time.Now().Add(c.Timeout)
	e.port++
	s.Server = netip.AddrPortFrom(n.B.Addr, 7000+e.port%2000)
	if e.o.KeyGen != nil {
		if s.Keys, err = e.o.KeyGen(p); err != nil {
			r.Error, r.Harness = fmt.Sprintf("keys: %v", err), true
			return r
		}
	}
	base := fmt.Sprintf("%s-%s-%s-rep%d", c.Scenario, slug(c.Name), p, rep)
	if e.o.CPUProfile {
		s.CPUProfile = filepath.Join(e.o.Out, "profiles", base+".cpu.pprof")
	}
	if e.o.MemProfile {
		s.MemProfile = filepath.Join(e.o.Out, "profiles", base+".mem.pprof")
	}
	if s.CPUProfile != "" || s.MemProfile != "" {
		if err := os.MkdirAll(filepath.Join(e.o.Out, "profiles"), 0o755); err != nil {
			r.Error, r.Harness = err.Error(), true
			return r
		}
	}
	opts := runner.Options{ServerCPU: c.ServerCPU, ClientCPU: c.ClientCPU}
	if e.o.Verbose {
		opts.Log = prefixWriter{e.log, p}
	}
	cli, srv, err := runner.Run(ctx, n, s, opts)
	for _, f := range []string{s.CPUProfile, s.MemProfile} {
		for _, side := range []string{"client", "server"} {
			if f == "" {
				continue
			}
			if sf := sideFile(f, side); fileExists(sf) {
				r.Profiles = append(r.Profiles, sf)
			}
		}
	}
	if err != nil {
		if errors.Is(err, peer.ErrUnsupported) || strings.Contains(err.Error(), peer.ErrUnsupported.Error()) {
			r.Skipped = "n/a"
			return r
		}
		var he *runner.HarnessError
		r.Error, r.Harness = err.Error(), errors.As(err, &he)
	}
	fillMetrics(&r, c, cli, srv)
	return r
}

// sideFile mirrors runner's naming of per-side profiles.
func sideFile(path, side string) string {
	dir, file := filepath.Split(path)
	if i := strings.IndexByte(file, '.'); i > 0 {
		return dir + file[:i] + "." + side + file[i:]
	}
	return path + "." + side
}

func fileExists(p string) bool { _, err := os.Stat(p); return err == nil }

func slug(s string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(s) {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9':
			b.WriteRune(r)
		case b.Len() > 0 && !strings.HasSuffix(b.String(), "-"):
			b.WriteByte('-')
		}
	}
	return strings.TrimSuffix(b.String(), "-")
}

type prefixWriter struct {
	w    io.Writer
	peer string
}

func (p prefixWriter) Write(b []byte) (int, error) {
	_, err := fmt.Fprintf(p.w, "  %s %s", p.peer, b)
	return len(b), err
}
