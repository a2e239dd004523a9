package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/flightline/flightline/transport"
)

// sendFlags are the flags of `flightline send`.
type sendFlags struct {
	commonFlags
	metricsFlags
	to, peer, keyFile         string
	datapath, iface, local    string
	parallel                  int
	handshakeTimeout, timeout time.Duration
	resume                    bool
}

func (f *sendFlags) register(fset *flag.FlagSet) {
	f.commonFlags.register(fset)
	f.metricsFlags.register(fset)
	fset.StringVar(&f.to, "to", "", "receiver `IP:PORT` (required)")
	fset.StringVar(&f.peer, "peer", "", "receiver's public `key` (required)")
	fset.StringVar(&f.keyFile, "key", "", "our private key `file` (default: an ephemeral identity)")
	fset.StringVar(&f.datapath, "datapath", "auto", "datapath: auto, udp or xdp")
	fset.StringVar(&f.iface, "interface", "", "network `interface` for AF_XDP")
	fset.StringVar(&f.local, "local", "", "local `IP:PORT` to send from (default: any address, ephemeral port; xdp needs a real address)")
	fset.IntVar(&f.parallel, "parallel", 16, "files sent at the same time, one stream each")
	fset.DurationVar(&f.handshakeTimeout, "handshake-timeout", transport.DefaultHandshakeTimeout, "give up when the receiver does not answer within this `duration`")
	fset.DurationVar(&f.timeout, "timeout", 0, "abort the whole transfer after this `duration` (default: none)")
	fset.BoolVar(&f.resume, "resume", false, "continue from the partial file an interrupted transfer left on the receiver, when its SHA-256 matches")
}

// sendSummary is the JSON object of send --json (and the demo's base).
type sendSummary struct {
	Files        int      `json:"files"`
	Failed       int      `json:"failed"`
	Bytes        uint64   `json:"bytes"`
	ResumedBytes uint64   `json:"resumed_bytes"`
	DurationMS   float64  `json:"duration_ms"`
	HandshakeMS  float64  `json:"handshake_ms"`
	GoodputMBps  float64  `json:"goodput_mbps"`
	GoodputGbps  float64  `json:"goodput_gbps"`
	RTTMS        float64  `json:"rtt_ms"`
	MinRTTMS     float64  `json:"min_rtt_ms"`
	Cwnd         int64    `json:"cwnd_bytes"`
	PacketsSent  uint64   `json:"packets_sent"`
	Retransmits  uint64   `json:"retransmits"`
	Lost         uint64   `json:"lost"`
	Datapath     string   `json:"datapath"`
	GSO          bool     `json:"gso"`
	GRO          bool     `json:"gro"`
	ZeroCopy     bool     `json:"zerocopy"`
	DatapathNote string   `json:"datapath_note,omitempty"`
	Errors       []string `json:"errors,omitempty"`
}

// fill copies the connection statistics into the summary.
func (s *sendSummary) fill(st transport.Stats, bytes uint64, d time.Duration) {
	s.Bytes = bytes
	s.DurationMS = ms(d)
	s.GoodputMBps = mbps(bytes, d)
	s.GoodputGbps = s.GoodputMBps * 8 / 1000
	s.RTTMS = ms(st.SmoothedRTT)
	s.MinRTTMS = ms(st.MinRTT)
	s.Cwnd = st.CongestionWindow
	s.PacketsSent = st.PacketsSent
	s.Retransmits = st.PacketsRetransmitted
	s.Lost = st.PacketsLost
	s.Datapath = st.Datapath
	s.GSO, s.GRO, s.ZeroCopy = st.Link.GSO, st.Link.GRO, st.Link.ZeroCopy
	s.DatapathNote = st.Link.Note
}

// outFile is one file to send.
type outFile struct {
	path string
	name string // base name sent in the header
	size uint64
}

// runSend sends every file on its own stream of one connection, at most
// --parallel at a time, and verifies each receiver digest.
func runSend(ctx context.Context, args []string, e *env) error {
	var f sendFlags
	fset := newFlagSet("send", "--to IP:PORT --peer PUBKEY [flags] FILE...", e)
	f.register(fset.FlagSet)
	if err := fset.parse(args); err != nil {
		return err
	}
	switch {
	case f.to == "":
		return usagef("--to is required")
	case f.peer == "":
		return usagef("--peer is required")
	case fset.NArg() == 0:
		return usagef("no files to send")
	case f.parallel < 1:
		return usagef("--parallel %d: must be at least 1", f.parallel)
	case f.handshakeTimeout <= 0:
		return usagef("--handshake-timeout %v: must be positive", f.handshakeTimeout)
	case f.resume && f.keyFile == "":
		return usagef("--resume needs --key: the receiver keeps a partial file for the sender key that wrote it, and an ephemeral key is new every run")
	}
	if err := checkDatapath(f.datapath); err != nil {
		return err
	}
	to, err := netip.ParseAddrPort(f.to)
	if err != nil {
		return usagef("--to %q: want IP:PORT", f.to)
	}
	peer, err := transport.ParsePublicKey(f.peer)
	if err != nil {
		return usagef("--peer: %v", err)
	}
	local := f.local
	if local == "" {
		local = "0.0.0.0:0"
		if to.Addr().Is6() && !to.Addr().Is4In6() {
			local = "[::]:0"
		}
	} else if _, err := netip.ParseAddrPort(local); err != nil {
		return usagef("--local %q: want IP:PORT", local)
	}
	files, err := statFiles(fset.Args())
	if err != nil {
		return err
	}
	cfg := &transport.Config{
		Datapath:         f.datapath,
		Interface:        f.iface,
		HandshakeTimeout: f.handshakeTimeout,
		Logf:             f.logf(e.stderr, false),
	}
	if f.keyFile != "" {
		if cfg.PrivateKey, err = loadPrivateKey(f.keyFile); err != nil {
			return err
		}
	}
	if f.timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, f.timeout)
		defer cancel()
	}
	stopProf, err := f.startProfiles()
	if err != nil {
		return err
	}
	err = sendFiles(ctx, e, &f, local, to, peer, cfg, files)
	return errors.Join(err, stopProf())
}

// statFiles checks every argument is a readable regular file and learns its
// size up front, so a typo fails before any connection is made.
func statFiles(paths []string) ([]outFile, error) {
	files := make([]outFile, 0, len(paths))
	seen := map[string]string{}
	for _, p := range paths {
		st, err := os.Stat(p)
		if err != nil {
			return nil, err // "stat FILE: no such file or directory"
		}
		if !st.Mode().IsRegular() {
			return nil, fmt.Errorf("%s: not a regular file", p)
		}
		name := filepath.Base(p)
		if _, err := sanitizeName(name); err != nil {
			return nil, err
		}
		if prev, dup := seen[name]; dup {
			return nil, fmt.Errorf("%s and %s have the same name %q on the receiver", prev, p, name)
		}
		seen[name] = p
		files = append(files, outFile{path: p, name: name, size: uint64(st.Size())})
	}
	return files, nil
}

func sendFiles(ctx context.Context, e *env, f *sendFlags, local string, to netip.AddrPort,
	peer transport.PublicKey, cfg *transport.Config, files []outFile) error {
	ep, err := transport.Bind(local, cfg)
	if err != nil {
		return err
	}
	defer ep.Close()
	stopMetrics, err := f.metricsFlags.start(e, "send", ep)
	if err != nil {
		return err
	}
	defer stopMetrics()
	hsStart := time.Now()
	conn, err := ep.Dial(ctx, to, peer)
	if err != nil {
		if errors.Is(err, transport.ErrHandshakeTimeout) {
			return fmt.Errorf("connect %v: no answer within %v: peer unreachable, not listening, or its public key differs", to, f.handshakeTimeout)
		}
		return fmt.Errorf("connect %v: %w", to, err)
	}
	handshake := time.Since(hsStart)

	var total uint64
	for _, fl := range files {
		total += fl.size
	}
	var sent atomic.Uint64
	var bar *progress
	if e.stderrTTY && !f.json {
		bar = startProgress(e.stderr, e.stderrCols, total, &sent)
	}
	start := time.Now()
	errs := make([]error, len(files))
	var resumed atomic.Uint64
	sem := make(chan struct{}, f.parallel)
	var wg sync.WaitGroup
	for i, fl := range files {
		wg.Add(1)
		go func() {
			defer wg.Done()
			select {
			case sem <- struct{}{}:
			case <-ctx.Done():
				errs[i] = fmt.Errorf("send %s: %w", fl.name, ctx.Err())
				return
			}
			defer func() { <-sem }()
			var skipped uint64
			skipped, errs[i] = sendPath(ctx, conn, fl, &sent, f.resume)
			resumed.Add(skipped)
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	if bar != nil {
		bar.finish()
	}
	// Wait (bounded) for our final ACKs before reading statistics.
	cctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	st := conn.Stats()
	conn.CloseContext(cctx)

	sum := sendSummary{Files: len(files), HandshakeMS: ms(handshake)}
	// sent also counts the bytes resumes skipped (the bar shows the
	// files' progress); the summary counts bytes sent.
	sum.fill(st, sent.Load()-resumed.Load(), elapsed)
	sum.ResumedBytes = resumed.Load()
	var failed []error
	for _, err := range errs {
		if err != nil {
			failed = append(failed, err)
			sum.Errors = append(sum.Errors, err.Error())
		}
	}
	sum.Failed = len(failed)
	if f.json {
		if err := writeJSON(e.stdout, sum); err != nil {
			return err
		}
	} else {
		fmt.Fprintf(e.stdout, "sent %s, %d bytes in %v: %.1f MB/s (%.2f Gbit/s), handshake %v, rtt %v, retransmits %d, lost %d, datapath %s\n",
			plural(len(files)-len(failed), "file"), sum.Bytes, roundDur(elapsed), sum.GoodputMBps, sum.GoodputGbps,
			roundDur(handshake), roundDur(st.SmoothedRTT), st.PacketsRetransmitted, st.PacketsLost, st.Datapath)
		if sum.ResumedBytes > 0 {
			fmt.Fprintf(e.stdout, "resumed: %d bytes were already on the receiver and not sent again\n", sum.ResumedBytes)
		}
	}
	switch len(failed) {
	case 0:
		return nil
	case 1:
		return failed[0]
	default:
		return fmt.Errorf("%d of %d files failed; first: %w", len(failed), len(files), failed[0])
	}
}

// sendPath sends one file from disk and returns the bytes a resume skipped.
func sendPath(ctx context.Context, conn *transport.Conn, fl outFile, sent *atomic.Uint64, resume bool) (uint64, error) {
	file, err := os.Open(fl.path)
	if err != nil {
		return 0, fmt.Errorf("send %s: %w", fl.name, err)
	}
	defer file.Close()
	res, err := sendOne(ctx, conn, fl.name, fl.size, file, sent, resume)
	return res.Resumed, err
}
