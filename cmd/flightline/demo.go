package main

import (
	"context"
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/flightline/flightline/testnet"
	"github.com/flightline/flightline/transport"
	"github.com/flightline/flightline/transport/link"
)

// demoFlags are the flags of `flightline demo`.
type demoFlags struct {
	commonFlags
	size             sizeFlag
	streams          int
	datapath, netns  string
	xdpMode          string
	xdpBusyPoll      bool
	seed             uint64
	handshakeTimeout time.Duration
}

func (f *demoFlags) register(fset *flag.FlagSet) {
	f.commonFlags.register(fset)
	f.size = 64 << 20
	fset.Var(&f.size, "size", "total bytes to transfer, split evenly over the streams (e.g. 64MiB, 1GB)")
	fset.IntVar(&f.streams, "streams", 4, "concurrent streams")
	fset.StringVar(&f.datapath, "datapath", "auto", "datapath: auto, udp or xdp")
	fset.StringVar(&f.xdpMode, "xdp-mode", "auto", "XDP attach mode for the xdp datapath: auto, native or generic")
	fset.BoolVar(&f.xdpBusyPoll, "xdp-busy-poll", false, "preferred busy polling on the AF_XDP sockets (logged fallback where unavailable)")
	fset.StringVar(&f.netns, "netns", "auto", "run on a veth pair in network namespaces: auto (when root), on, or off (loopback)")
	fset.Uint64Var(&f.seed, "seed", 1, "seed of the generated data")
	fset.DurationVar(&f.handshakeTimeout, "handshake-timeout", 5*time.Second, "handshake timeout")
}

// demoReport is the demo's result, printed as text or as one JSON object.
type demoReport struct {
	sendSummary
	OK             bool   `json:"ok"`
	Where          string `json:"where"` // "netns" or "loopback"
	WhereReason    string `json:"where_reason"`
	Network        string `json:"network,omitempty"`
	ServerAddr     string `json:"server_addr"`
	ClientAddr     string `json:"client_addr"`
	ServerDatapath string `json:"server_datapath"`
	Streams        int    `json:"streams"`
	SHA256Match    bool   `json:"sha256_match"`
	Verified       int    `json:"streams_verified"`
	Interrupted    bool   `json:"interrupted,omitempty"`
	// The datapath's own drop and ring counters on each side (zero on
	// datapaths that keep none); a lossless run keeps the drops at 0.
	SenderLink   link.Counters `json:"sender_link"`
	ReceiverLink link.Counters `json:"receiver_link"`
}

// runDemo runs a listener and a sender in one process and transfers
// generated data between them.
func runDemo(ctx context.Context, args []string, e *env) error {
	var f demoFlags
	fset := newFlagSet("demo", "[--size 64MiB] [--streams 4] [--datapath auto|udp|xdp] [--netns auto|on|off] [--json]", e)
	f.register(fset.FlagSet)
	if err := fset.parse(args); err != nil {
		return err
	}
	if fset.NArg() > 0 {
		return usagef("unexpected argument %q", fset.Arg(0))
	}
	if err := checkDatapath(f.datapath); err != nil {
		return err
	}
	switch {
	case f.streams < 1 || f.streams > transport.DefaultMaxStreams:
		return usagef("--streams %d: want 1..%d", f.streams, transport.DefaultMaxStreams)
	case f.xdpMode != "auto" && f.xdpMode != "native" && f.xdpMode != "generic":
		return usagef("--xdp-mode %q: want auto, native or generic", f.xdpMode)
	case f.netns != "auto" && f.netns != "on" && f.netns != "off":
		return usagef("--netns %q: want auto, on or off", f.netns)
	case f.handshakeTimeout <= 0:
		return usagef("--handshake-timeout %v: must be positive", f.handshakeTimeout)
	}
	stopProf, err := f.startProfiles()
	if err != nil {
		return err
	}
	rep, err := demo(ctx, &f, e)
	if perr := stopProf(); err == nil {
		err = perr
	}
	if rep != nil {
		if f.json {
			if jerr := writeJSON(e.stdout, rep); err == nil {
				err = jerr
			}
		} else {
			printDemo(e, rep)
		}
	}
	return err
}

// site is where the demo's two endpoints live.
type site struct {
	where, reason    string
	network          *testnet.Network // nil on loopback
	srvAddr, cliAddr string
	srvIf, cliIf     string
	srvRun, cliRun   func(func() error) error
}

func direct(fn func() error) error { return fn() }

// chooseSite decides between a veth pair in namespaces and loopback and
// builds the network. The caller closes site.network.
func chooseSite(mode string) (*site, error) {
	lo := func(reason string) *site {
		return &site{where: "loopback", reason: reason, srvAddr: "127.0.0.1:0", cliAddr: "127.0.0.1:0",
			srvRun: direct, cliRun: direct}
	}
	if mode == "off" {
		return lo("--netns off"), nil
	}
	var why error
	if os.Geteuid() != 0 {
		why = errors.New("not root")
	} else if err := testnet.Privileged(); err != nil {
		why = err
	}
	var n *testnet.Network
	if why == nil {
		var err error
		if n, err = testnet.Setup(testnet.Config{}); err != nil {
			why = err
		}
	}
	if why != nil {
		if mode == "on" {
			return nil, fmt.Errorf("--netns on: cannot build namespaces: %w", why)
		}
		return lo(why.Error()), nil
	}
	return &site{
		where: "netns", reason: "root", network: n,
		srvAddr: netip.AddrPortFrom(n.A.Addr, 0).String(), cliAddr: netip.AddrPortFrom(n.B.Addr, 0).String(),
		srvIf: n.A.Ifname, cliIf: n.B.Ifname,
		srvRun: n.A.Run, cliRun: n.B.Run,
	}, nil
}

// demo does the work of runDemo. It returns a report whenever the transfer
// got far enough to say something, also on failure.
func demo(ctx context.Context, f *demoFlags, e *env) (*demoReport, error) {
	st, err := chooseSite(f.netns)
	if err != nil {
		return nil, err
	}
	if st.network != nil {
		// Deleted on every path out, including SIGINT (ctx ends, the
		// transfer aborts, and we return through here).
		defer st.network.Close()
	}
	rep := &demoReport{Where: st.where, WhereReason: st.reason, Streams: f.streams}
	if st.network != nil {
		rep.Network = st.network.ID
	}
	logf := f.logf(e.stderr, false)
	skey, err := transport.GenerateKey()
	if err != nil {
		return nil, fmt.Errorf("generate key: %w", err)
	}
	var srvEP, cliEP *transport.Endpoint
	err = st.srvRun(func() (err error) {
		srvEP, err = transport.Listen(st.srvAddr, &transport.Config{
			PrivateKey: skey, Datapath: f.datapath, Interface: st.srvIf, Logf: logf,
			XDPMode: f.xdpMode, XDPBusyPoll: f.xdpBusyPoll})
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("listener: %w", err)
	}
	defer srvEP.Close()
	err = st.cliRun(func() (err error) {
		cliEP, err = transport.Bind(st.cliAddr, &transport.Config{
			Datapath: f.datapath, Interface: st.cliIf, Logf: logf,
			XDPMode: f.xdpMode, XDPBusyPoll: f.xdpBusyPoll,
			HandshakeTimeout: f.handshakeTimeout})
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("sender: %w", err)
	}
	defer cliEP.Close()
	rep.ServerAddr, rep.ClientAddr = srvEP.LocalAddr().String(), cliEP.LocalAddr().String()
	rep.ServerDatapath = srvEP.Link().Caps().Datapath

	// Receiver: hash and discard, and hand each result to the checker.
	recvd := make(chan namedResult, f.streams)
	srv := &server{ep: srvEP, rc: &receiver{maxSize: uint64(f.size)}, stdout: e.stdout, stderr: e.stderr,
		done: func(r result, err error) { recvd <- namedResult{r, err} }}
	srvCtx, stopSrv := context.WithCancel(ctx)
	srvDone := make(chan struct{})
	go func() { srv.run(srvCtx, 2*time.Second); close(srvDone) }()
	defer func() { stopSrv(); <-srvDone }()

	hsStart := time.Now()
	conn, err := cliEP.Dial(ctx, srvEP.LocalAddr(), srvEP.PublicKey())
	if err != nil {
		return nil, fmt.Errorf("connect: %w", err)
	}
	handshake := time.Since(hsStart)

	sent, elapsed, errs := sendGenerated(ctx, conn, f)
	stats := conn.Stats()
	rep.sendSummary = sendSummary{Files: f.streams, HandshakeMS: ms(handshake)}
	rep.fill(stats, sent.bytes.Load(), elapsed)
	for _, err := range errs {
		if err != nil {
			rep.Failed++
			rep.Errors = append(rep.Errors, err.Error())
		}
	}
	cctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	conn.CloseContext(cctx)
	cancel()
	rep.SenderLink, rep.ReceiverLink = cliEP.Link().Caps().Counters, srvEP.Link().Caps().Counters

	// Every stream the sender finished had its digest confirmed by the
	// receiver; compare the receiver's own records too, in process.
	got := map[string][32]byte{}
	wait := time.After(5 * time.Second)
collect:
	for range f.streams - rep.Failed {
		select {
		case r := <-recvd:
			if r.err == nil {
				got[r.res.Name] = r.res.Digest
			}
		case <-wait:
			break collect
		case <-ctx.Done():
			break collect
		}
	}
	for i, d := range sent.digests {
		if errs[i] == nil && got[demoName(i)] == d {
			rep.Verified++
		}
	}
	rep.SHA256Match = rep.Verified == f.streams
	rep.OK = rep.SHA256Match && rep.Failed == 0
	rep.Interrupted = ctx.Err() != nil
	switch {
	case rep.Interrupted:
		return rep, fmt.Errorf("interrupted: %w", ctx.Err())
	case rep.Failed > 0:
		return rep, fmt.Errorf("%d of %d streams failed; first: %s", rep.Failed, f.streams, rep.Errors[0])
	case !rep.SHA256Match:
		return rep, fmt.Errorf("SHA-256 mismatch: %d of %d streams verified on the receiving side", rep.Verified, f.streams)
	}
	return rep, nil
}

type namedResult struct {
	res result
	err error
}

func demoName(i int) string { return fmt.Sprintf("demo-%d", i) }

// generated is what the demo sender sent.
type generated struct {
	bytes   atomic.Uint64
	digests [][32]byte
}

// sendGenerated sends f.size bytes of seeded pseudo-random data over
// f.streams concurrent streams.
func sendGenerated(ctx context.Context, conn *transport.Conn, f *demoFlags) (*generated, time.Duration, []error) {
	g := &generated{digests: make([][32]byte, f.streams)}
	errs := make([]error, f.streams)
	per := uint64(f.size) / uint64(f.streams)
	start := time.Now()
	var wg sync.WaitGroup
	for i := range f.streams {
		n := per
		if i == f.streams-1 {
			n = uint64(f.size) - per*uint64(f.streams-1)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			var seed [32]byte
			binary.LittleEndian.PutUint64(seed[:], f.seed)
			binary.LittleEndian.PutUint64(seed[8:], uint64(i))
			// ChaCha8 generates several GB/s per core: generation is
			// never the bottleneck, unlike crypto/rand.
			res, err := sendOne(ctx, conn, demoName(i), n, rand.NewChaCha8(seed), &g.bytes, false)
			g.digests[i], errs[i] = res.Digest, err
		}()
	}
	wg.Wait()
	return g, time.Since(start), errs
}

func printDemo(e *env, r *demoReport) {
	w := e.stdout
	if r.Where == "netns" {
		fmt.Fprintf(w, "where: veth pair in namespaces %s (%s; sender %s in %sb -> receiver %s in %sa)\n",
			r.Network, r.WhereReason, r.ClientAddr, r.Network, r.ServerAddr, r.Network)
	} else {
		fmt.Fprintf(w, "where: loopback (%s)\n", r.WhereReason)
	}
	fmt.Fprintf(w, "datapath: sender %s, receiver %s (gso %v, gro %v, zerocopy %v)", r.Datapath, r.ServerDatapath, r.GSO, r.GRO, r.ZeroCopy)
	if r.DatapathNote != "" {
		fmt.Fprintf(w, ": %s", r.DatapathNote)
	}
	fmt.Fprintln(w)
	d := time.Duration(r.DurationMS * float64(time.Millisecond))
	fmt.Fprintf(w, "transferred %s (%d bytes) over %d streams in %v: %.1f MB/s, %.2f Gbit/s (handshake %.2f ms)\n",
		formatSize(r.Bytes), r.Bytes, r.Streams, roundDur(d), r.GoodputMBps, r.GoodputGbps, r.HandshakeMS)
	match := "match"
	switch {
	case r.Interrupted:
		match = "interrupted"
	case !r.SHA256Match:
		match = "MISMATCH"
	}
	fmt.Fprintf(w, "sha256: %s (%d/%d streams verified on the receiving side)\n", match, r.Verified, r.Streams)
	fmt.Fprintf(w, "sender stats: rtt %.3f ms (min %.3f ms), cwnd %s, packets sent %d, retransmits %d, lost %d\n",
		r.RTTMS, r.MinRTTMS, formatSize(uint64(max(r.Cwnd, 0))), r.PacketsSent, r.Retransmits, r.Lost)
	for _, side := range []struct {
		name string
		c    link.Counters
	}{{"sender", r.SenderLink}, {"receiver", r.ReceiverLink}} {
		if side.c == (link.Counters{}) {
			continue
		}
		c := side.c
		fmt.Fprintf(w, "%s datapath: rx dropped %d (fill ring empty %d, rx ring full %d), tx full waits %d, tx full errors %d, neighbour drops %d, fill low-water %d/%d\n",
			side.name, c.RxDropped, c.RxFillRingEmpty, c.RxRingFull, c.TxFullWaits, c.TxFullErrors, c.NeighbourDrops, c.FillLowWater, c.FillSize)
	}
}
