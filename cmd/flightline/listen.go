package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"sync"
	"time"

	"github.com/flightline/flightline/transport"
)

// listenFlags are the flags of `flightline listen`.
type listenFlags struct {
	commonFlags
	metricsFlags
	addr, keyFile, allow, dir string
	datapath, iface           string
	force, allowAny           bool
	maxSize, maxPeerBytes     sizeFlag
	maxPeerStreams            int
	grace, headerTimeout      time.Duration
	keepPartial               time.Duration
}

func (f *listenFlags) register(fset *flag.FlagSet) {
	f.commonFlags.register(fset)
	f.metricsFlags.register(fset)
	fset.StringVar(&f.addr, "addr", "", "listen on `IP:PORT` (required)")
	fset.StringVar(&f.keyFile, "key", "", "private key `file` from 'flightline keygen -o' (required)")
	fset.StringVar(&f.allow, "allow", "", "accept only these comma-separated public `keys` (this or --allow-any is required)")
	fset.BoolVar(&f.allowAny, "allow-any", false, "accept any peer that knows our public key (no allowlist; a warning is printed)")
	fset.StringVar(&f.dir, "dir", "", "write received files into `directory` (required)")
	fset.StringVar(&f.datapath, "datapath", "auto", "datapath: auto, udp or xdp")
	fset.StringVar(&f.iface, "interface", "", "network `interface` for AF_XDP (default: the one owning --addr)")
	fset.BoolVar(&f.force, "force", false, "overwrite existing files")
	f.maxSize = defaultMaxSize
	fset.Var(&f.maxSize, "max-size", "refuse files larger than `size`")
	fset.DurationVar(&f.grace, "grace", 10*time.Second, "on SIGINT/SIGTERM, let running transfers finish for this long")
	fset.DurationVar(&f.headerTimeout, "header-timeout", defaultHeaderTimeout, "reset a stream that has not sent its transfer header within this `duration`")
	fset.IntVar(&f.maxPeerStreams, "max-streams-per-peer", defaultMaxStreamsPerPeer, "transfers one peer (key) may run at once, over all its connections")
	fset.DurationVar(&f.keepPartial, "keep-partial", defaultKeepPartial, "keep an interrupted transfer's data this `long` after its last write, so 'send --resume' can continue it (0: discard at once)")
	f.maxPeerBytes = defaultMaxBytesPerPeer
	fset.Var(&f.maxPeerBytes, "max-bytes-per-peer", "refuse a file when one peer's running transfers would announce more than `size` together")
}

// transferRecord is the per-transfer JSON object of listen --json.
type transferRecord struct {
	Name        string  `json:"name"`
	Path        string  `json:"path,omitempty"`
	Bytes       uint64  `json:"bytes"`
	ResumedFrom uint64  `json:"resumed_from,omitempty"`
	DurationMS  float64 `json:"duration_ms"`
	GoodputMBps float64 `json:"goodput_mbps"`
	SHA256      string  `json:"sha256,omitempty"`
	Peer        string  `json:"peer"`
	PeerAddr    string  `json:"peer_addr"`
	RTTMS       float64 `json:"rtt_ms"`
	Retransmits uint64  `json:"retransmits"`
	Datapath    string  `json:"datapath"`
	Error       string  `json:"error,omitempty"`
}

// runListen receives files until ctx ends (SIGINT/SIGTERM), then lets running
// transfers finish for --grace and closes every connection gracefully.
func runListen(ctx context.Context, args []string, e *env) error {
	var f listenFlags
	fset := newFlagSet("listen", "--addr IP:PORT --key FILE --dir DIR [flags]", e)
	f.register(fset.FlagSet)
	if err := fset.parse(args); err != nil {
		return err
	}
	if fset.NArg() > 0 {
		return usagef("unexpected argument %q", fset.Arg(0))
	}
	switch {
	case f.addr == "":
		return usagef("--addr is required")
	case f.keyFile == "":
		return usagef("--key is required")
	case f.dir == "":
		return usagef("--dir is required")
	case f.allow == "" && !f.allowAny:
		return usagef("--allow KEYS or --allow-any is required: without an allowlist any peer that knows this listener's public key may write files into --dir")
	case f.allow != "" && f.allowAny:
		return usagef("--allow and --allow-any exclude each other")
	case f.maxPeerStreams < 1:
		return usagef("--max-streams-per-peer %d: want at least 1", f.maxPeerStreams)
	case f.headerTimeout <= 0:
		return usagef("--header-timeout %v: want a positive duration", f.headerTimeout)
	case f.keepPartial < 0:
		return usagef("--keep-partial %v: want 0 or a positive duration", f.keepPartial)
	}
	if err := checkDatapath(f.datapath); err != nil {
		return err
	}
	// One connection may run as many streams as one peer may: a sender
	// on one connection then waits for a slot instead of being refused.
	cfg := &transport.Config{Datapath: f.datapath, Interface: f.iface, MaxStreams: f.maxPeerStreams}
	if f.allow != "" {
		keys, err := parsePublicKeys("allow", f.allow)
		if err != nil {
			return err
		}
		cfg.AllowedPeers = keys
	}
	if st, err := os.Stat(f.dir); err != nil {
		return fmt.Errorf("--dir: %w", err)
	} else if !st.IsDir() {
		return fmt.Errorf("--dir %s: not a directory", f.dir)
	}
	key, err := loadPrivateKey(f.keyFile)
	if err != nil {
		return err
	}
	cfg.PrivateKey = key
	stderr := &lockedWriter{w: e.stderr}
	// A server's log lines (datapath fallback) are always worth showing.
	cfg.Logf = f.logf(stderr, true)

	stopProf, err := f.startProfiles()
	if err != nil {
		return err
	}
	ep, err := transport.Listen(f.addr, cfg)
	if err != nil {
		return errors.Join(err, stopProf())
	}
	stopMetrics, err := f.metricsFlags.start(e, "listen", ep)
	if err != nil {
		return errors.Join(err, ep.Close(), stopProf())
	}
	fmt.Fprintf(stderr, "flightline listen: listening on %v (datapath %s), public key %s, writing to %s\n",
		ep.LocalAddr(), ep.Link().Caps().Datapath, ep.PublicKey(), f.dir)
	if f.allowAny {
		fmt.Fprintf(stderr, "flightline listen: WARNING: --allow-any: any peer that knows public key %s may write files into %s (use --allow KEYS to restrict)\n",
			ep.PublicKey(), f.dir)
	}
	if e.ready != nil {
		e.ready(ep.LocalAddr(), ep.PublicKey())
	}
	srv := &server{
		ep: ep,
		rc: &receiver{dir: f.dir, force: f.force, maxSize: uint64(f.maxSize), headerTimeout: f.headerTimeout,
			peers: newPeerLimits(f.maxPeerStreams, uint64(f.maxPeerBytes)), keepPartial: f.keepPartial},
		stdout: &lockedWriter{w: e.stdout},
		stderr: stderr,
		json:   f.json,
	}
	if f.keepPartial > 0 {
		sweepCtx, stopSweep := context.WithCancel(ctx)
		swept := make(chan struct{})
		go func() {
			defer close(swept)
			expirePartials(sweepCtx, &srv.rc.partials, f.dir, f.keepPartial, func(format string, args ...any) {
				fmt.Fprintf(stderr, "flightline listen: "+format+"\n", args...)
			})
		}()
		defer func() { stopSweep(); <-swept }()
	}
	srv.run(ctx, f.grace)
	return errors.Join(stopMetrics(), stopProf())
}

// server accepts connections and streams on ep and runs one transfer per
// stream.
type server struct {
	ep     *transport.Endpoint
	rc     *receiver
	stdout io.Writer
	stderr io.Writer
	json   bool
	// done, when set, receives every transfer's result (the demo checks
	// digests with it) instead of it being printed.
	done func(result, error)
}

// run serves until ctx ends, then waits up to grace for running transfers,
// cancels what is left and closes the endpoint.
func (s *server) run(ctx context.Context, grace time.Duration) {
	// Transfers run under their own context so a signal stops accepting at
	// once but gives running transfers the grace period.
	xctx, cancelX := context.WithCancel(context.Background())
	defer cancelX()
	var wg sync.WaitGroup
	var connsMu sync.Mutex
	conns := map[*transport.Conn]bool{}
	for {
		c, err := s.ep.Accept(ctx)
		if err != nil {
			if ctx.Err() == nil {
				fmt.Fprintf(s.stderr, "flightline listen: accept: %v\n", err)
			}
			break
		}
		connsMu.Lock()
		conns[c] = true
		connsMu.Unlock()
		// Forget a connection once it has ended; until then shutdown
		// closes it gracefully.
		context.AfterFunc(c.Context(), func() {
			connsMu.Lock()
			delete(conns, c)
			connsMu.Unlock()
		})
		wg.Add(1)
		go func() {
			defer wg.Done()
			s.serveConn(ctx, xctx, c, &wg)
		}()
	}
	finished := make(chan struct{})
	go func() { wg.Wait(); close(finished) }()
	select {
	case <-finished:
	case <-time.After(grace):
		cancelX()
		<-finished
	}
	// Close connections gracefully (digests already sent get acknowledged)
	// before the endpoint goes.
	connsMu.Lock()
	open := make([]*transport.Conn, 0, len(conns))
	for c := range conns {
		open = append(open, c)
	}
	connsMu.Unlock()
	for _, c := range open {
		cctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		c.CloseContext(cctx)
		cancel()
	}
	s.ep.Close()
}

// serveConn accepts streams of one connection until it ends or ctx ends;
// each stream runs under xctx.
func (s *server) serveConn(ctx, xctx context.Context, c *transport.Conn, wg *sync.WaitGroup) {
	for {
		st, err := c.AcceptStream(ctx)
		if err != nil {
			return // connection closed or shutting down
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			res, err := s.rc.serve(xctx, st, c.RemotePublicKey())
			if s.done != nil {
				s.done(res, err)
				return
			}
			s.report(c, res, err)
		}()
	}
}

// report prints one transfer's summary line or JSON object.
func (s *server) report(c *transport.Conn, res result, err error) {
	st := c.Stats()
	rec := transferRecord{
		Name:        res.Name,
		Path:        res.Path,
		Bytes:       res.Bytes,
		ResumedFrom: res.Resumed,
		DurationMS:  ms(res.Duration),
		GoodputMBps: mbps(res.Bytes, res.Duration),
		Peer:        c.RemotePublicKey().String(),
		PeerAddr:    c.RemoteAddr().String(),
		RTTMS:       ms(st.SmoothedRTT),
		Retransmits: st.PacketsRetransmitted,
		Datapath:    st.Datapath,
	}
	if err != nil {
		rec.Error = err.Error()
	} else {
		rec.SHA256 = fmt.Sprintf("%x", res.Digest)
	}
	if s.json {
		writeJSON(s.stdout, rec)
		return
	}
	if err != nil {
		fmt.Fprintf(s.stderr, "flightline listen: transfer \"%s\" from %s (%s) failed: %s\n", displayName(res.Name), rec.PeerAddr, rec.Peer, displayName(err.Error()))
		return
	}
	resumed := ""
	if res.Resumed > 0 {
		resumed = fmt.Sprintf(" (resumed at byte %d)", res.Resumed)
	}
	fmt.Fprintf(s.stdout, "received %s: %d bytes%s in %v, %.1f MB/s, peer %s (%s), rtt %v, retransmits %d\n",
		displayName(res.Name), res.Bytes, resumed, roundDur(res.Duration), rec.GoodputMBps, rec.Peer, rec.PeerAddr,
		roundDur(st.SmoothedRTT), st.PacketsRetransmitted)
}
