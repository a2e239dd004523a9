// Package matrix is the benchmark's plan and its execution: which scenarios
// run with which peers on which network, in what order, and how the two sides'
// results become one report.Record per run.
package matrix

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/flightline/flightline/bench/internal/peer"
	"github.com/flightline/flightline/testnet"
)

// Scenario names, as they appear in records and on the command line.
const (
	ScenarioBulk  = "bulk"
	ScenarioLoss  = "loss"
	ScenarioPing  = "ping"
	ScenarioAbort = "abort"
	ScenarioScale = "scale"
	// ScenarioWAN is a bulk transfer over a 200 Mbit/s bottleneck (tbf in
	// the hop) with 20 ms RTT (the hop's userspace delay, 10 ms each way)
	// and random loss both ways.
	ScenarioWAN = "wan"
	// ScenarioCompete runs two bulk transfers at once over the WAN path;
	// its "peers" are pairs "a+b".
	ScenarioCompete = "compete"
)

// Scenarios lists every scenario in report order.
var Scenarios = []string{ScenarioBulk, ScenarioLoss, ScenarioWAN, ScenarioCompete, ScenarioPing, ScenarioAbort, ScenarioScale}

// Peer names. The subject is what every ratio in the report is taken of.
const (
	Subject        = "flightline-udp"
	FlightlineXDP  = "flightline-xdp"
	FlightlineXDPG = "flightline-xdp-generic"
	TCP            = "tcp"
	TCPCubic       = "tcp-cubic"
	QUIC           = "quic-go"
	KCP            = "kcp"
	KCPCrypt       = "kcp-crypt"
	UDPBlast       = "udp-blast"
	UDPGSOBlast    = "udp-gso-blast"
	XDPBlast       = "xdp-blast"
	XDPBlastBP     = "xdp-blast-busypoll"
	FlightlineXDPB = "flightline-xdp-busypoll"
	// FlightlineBBR and FlightlineCubic are flightline-udp with the
	// congestion controller pinned.
	FlightlineBBR   = "flightline-bbr"
	FlightlineCubic = "flightline-cubic"
	// SubjectNoRelease is the subject with its abort release disabled by
	// the bench-only switch: the reference design's behaviour.
	SubjectNoRelease = "flightline-udp, release off"
)

// Flightline reports whether peer runs flightline's own code (any datapath,
// and the abort scenario's release-off variant): such a run failing is a
// failure of the project, where another peer's failed run is a finding to
// footnote.
func Flightline(peer string) bool { return strings.HasPrefix(peer, "flightline") }

// AllPeers is every peer in report column order.
var AllPeers = []string{Subject, FlightlineBBR, FlightlineCubic, FlightlineXDP, FlightlineXDPG, FlightlineXDPB, TCP, TCPCubic, QUIC, KCP, KCPCrypt, UDPBlast, UDPGSOBlast, XDPBlast, XDPBlastBP}

// RatioPeers are the peers the subject is compared with in ratio columns.
var RatioPeers = []string{TCP, TCPCubic, QUIC, KCP, KCPCrypt, UDPGSOBlast}

// isBlast reports whether p is a raw ceiling: its goodput counts what
// arrived in the receiver's own window, not a reliable transfer.
func isBlast(p string) bool { return strings.HasSuffix(p, "-blast") }

// needsXDP reports whether p runs on AF_XDP.
func needsXDP(p string) bool { return strings.Contains(p, "xdp") }

// Case is one row of the report: a scenario variant, the network it runs on,
// the CPUs each side is pinned to, and the peers that run it.
type Case struct {
	Scenario string
	Name     string
	Net      testnet.Config
	// ServerCPU and ClientCPU pin each side's process; -1 = unpinned.
	ServerCPU, ClientCPU int
	Peers                []string
	// Spec is the template both sides get (peer, addresses, deadline and
	// profile paths are filled in per run).
	Spec peer.Spec
	// Timeout bounds one run of this case.
	Timeout time.Duration
}

// Sizes are the knobs a plan is built from.
type Sizes struct {
	BulkBytes    int64 // per bulk run
	LossBytes    int64 // per run under 1 % loss (5 % gets half); also per WAN and competing-flow run
	PingMessages int
	ScaleConns   int
	RunTimeout   time.Duration
}

// Profiles of the plan.
const (
	PlanQuick = "quick" // `make bench`: the headline rows, a few minutes
	PlanFull  = "full"  // `make bench-full`: the whole matrix
	PlanSmoke = "smoke" // CI: every peer and scenario once, tiny sizes
)

// DefaultSizes returns the sizes a plan uses unless overridden.
func DefaultSizes(plan string) Sizes {
	switch plan {
	case PlanFull:
		return Sizes{BulkBytes: 256 << 20, LossBytes: 64 << 20, PingMessages: 10000, ScaleConns: 10000, RunTimeout: 90 * time.Second}
	case PlanSmoke:
		return Sizes{BulkBytes: 2 << 20, LossBytes: 1 << 20, PingMessages: 50, ScaleConns: 20, RunTimeout: 20 * time.Second}
	}
	return Sizes{BulkBytes: 256 << 20, LossBytes: 32 << 20, PingMessages: 5000, ScaleConns: 5000, RunTimeout: 60 * time.Second}
}

func bulkSpec(bytes int64, streams int) peer.Spec {
	return peer.Spec{Scenario: peer.Bulk, Bytes: bytes, Streams: streams}
}

// Build returns the cases of plan with sizes sz.
func Build(plan string, sz Sizes) ([]Case, error) {
	var cs []Case
	add := func(c Case) {
		if c.Timeout == 0 {
			c.Timeout = sz.RunTimeout
		}
		cs = append(cs, c)
	}
	plain := testnet.Config{}
	offload := testnet.Config{TxChecksumOffload: true}
	lossy := func(p float64) testnet.Config {
		imp := testnet.Impairment{Loss: p}
		return testnet.Config{AtoB: imp, BtoA: imp}
	}
	wan := func(p float64) testnet.Config {
		return testnet.Config{
			AtoB: testnet.Impairment{Rate: 200e6, Delay: 10 * time.Millisecond, Loss: p},
			BtoA: testnet.Impairment{Delay: 10 * time.Millisecond, Loss: p},
		}
	}
	reliable := []string{Subject, FlightlineBBR, FlightlineCubic, FlightlineXDP, FlightlineXDPG, TCP, TCPCubic, QUIC, KCP, KCPCrypt}
	// The congestion-control rows (issue 11): every controller next to
	// kernel TCP with BBR and CUBIC, quic-go and kcp-go.
	ccPeers := []string{FlightlineBBR, FlightlineCubic, TCP, TCPCubic, QUIC, KCPCrypt}
	addWAN := func() {
		for _, p := range []float64{0, 0.01, 0.05} {
			bytes := sz.LossBytes
			if p > 0.01 {
				bytes /= 2
			}
			add(Case{Scenario: ScenarioWAN, Name: fmt.Sprintf("200 Mbit/s, 20 ms RTT, %g%% loss both ways", p*100), Net: wan(p),
				ServerCPU: -1, ClientCPU: -1, Peers: ccPeers, Spec: bulkSpec(bytes, 1)})
		}
		add(Case{Scenario: ScenarioCompete, Name: "two flows, 200 Mbit/s, 20 ms RTT", Net: wan(0), ServerCPU: -1, ClientCPU: -1,
			Peers: []string{FlightlineBBR + "+" + TCP, FlightlineBBR + "+" + FlightlineBBR, FlightlineCubic + "+" + TCP, TCP + "+" + TCP},
			Spec:  bulkSpec(sz.LossBytes, 1)})
	}
	pingPeers := []string{UDPBlast, XDPBlast, XDPBlastBP, Subject, FlightlineXDP, FlightlineXDPB, TCP, QUIC, KCP, KCPCrypt}
	ping := peer.Spec{Scenario: peer.Ping, Messages: sz.PingMessages, Warmup: max(10, sz.PingMessages/10), MessageSize: 64}
	scale := peer.Spec{Scenario: peer.Scale, Conns: sz.ScaleConns, Concurrency: 64}

	switch plan {
	case PlanQuick:
		// The headline row: veth with its default offloads (as on any NIC
		// with checksum offload), each side on its own CPU.
		add(Case{Scenario: ScenarioBulk, Name: "1 stream, pinned, offloads on", Net: offload, ServerCPU: 1, ClientCPU: 0,
			Peers: []string{Subject, FlightlineBBR, FlightlineCubic, FlightlineXDP, TCP, QUIC, KCP, UDPGSOBlast}, Spec: bulkSpec(sz.BulkBytes, 1)})
		add(Case{Scenario: ScenarioBulk, Name: "1 stream, pinned, offloads off", Net: plain, ServerCPU: 1, ClientCPU: 0,
			Peers: []string{Subject, TCP, QUIC, UDPGSOBlast}, Spec: bulkSpec(sz.BulkBytes, 1)})
		add(Case{Scenario: ScenarioBulk, Name: "8 streams, unpinned, offloads on", Net: offload, ServerCPU: -1, ClientCPU: -1,
			Peers: []string{Subject, TCP, QUIC}, Spec: bulkSpec(sz.BulkBytes, 8)})
		for _, p := range []float64{0.01, 0.05} {
			bytes := sz.LossBytes
			if p > 0.01 {
				bytes /= 2
			}
			add(Case{Scenario: ScenarioLoss, Name: fmt.Sprintf("%g%% loss both ways, 1 stream", p*100), Net: lossy(p), ServerCPU: -1, ClientCPU: -1,
				Peers: []string{Subject, FlightlineBBR, FlightlineCubic, TCP, TCPCubic, QUIC, KCPCrypt}, Spec: bulkSpec(bytes, 1)})
		}
		addWAN()
		add(Case{Scenario: ScenarioPing, Name: "64 B, different CPUs", Net: plain, ServerCPU: 1, ClientCPU: 0,
			Peers: []string{UDPBlast, Subject, TCP, QUIC}, Spec: ping})
		add(Case{Scenario: ScenarioAbort, Name: "A aborts with packets in flight", Peers: []string{Subject, SubjectNoRelease}})
		add(Case{Scenario: ScenarioScale, Name: fmt.Sprintf("%d idle connections", sz.ScaleConns), Net: plain, ServerCPU: -1, ClientCPU: -1,
			Peers: []string{Subject, TCP, QUIC}, Spec: scale})
	case PlanFull, PlanSmoke:
		for _, off := range []bool{false, true} {
			for _, streams := range []int{1, 8} {
				for _, pin := range []bool{false, true} {
					net, offName := plain, "offloads off"
					if off {
						net, offName = offload, "offloads on"
					}
					pinName, scpu, ccpu := "unpinned", -1, -1
					if pin {
						pinName, scpu, ccpu = "pinned", 1, 0
					}
					peers := slices.Clone(reliable)
					if streams == 1 {
						peers = append(peers, UDPBlast, UDPGSOBlast, XDPBlast)
					}
					add(Case{Scenario: ScenarioBulk, Name: fmt.Sprintf("%d stream%s, %s, %s", streams, plural(streams), pinName, offName),
						Net: net, ServerCPU: scpu, ClientCPU: ccpu, Peers: peers, Spec: bulkSpec(sz.BulkBytes, streams)})
				}
			}
		}
		for _, p := range []float64{0.01, 0.05} {
			bytes := sz.LossBytes
			if p > 0.01 {
				bytes /= 2
			}
			add(Case{Scenario: ScenarioLoss, Name: fmt.Sprintf("%g%% loss both ways, 1 stream", p*100), Net: lossy(p), ServerCPU: -1, ClientCPU: -1,
				Peers: reliable, Spec: bulkSpec(bytes, 1)})
		}
		addWAN()
		add(Case{Scenario: ScenarioPing, Name: "64 B, one CPU", Net: plain, ServerCPU: 0, ClientCPU: 0, Peers: pingPeers, Spec: ping})
		add(Case{Scenario: ScenarioPing, Name: "64 B, different CPUs", Net: plain, ServerCPU: 1, ClientCPU: 0, Peers: pingPeers, Spec: ping})
		add(Case{Scenario: ScenarioAbort, Name: "A aborts with packets in flight", Peers: []string{Subject, SubjectNoRelease}})
		add(Case{Scenario: ScenarioScale, Name: fmt.Sprintf("%d idle connections", sz.ScaleConns), Net: plain, ServerCPU: -1, ClientCPU: -1,
			Peers: []string{Subject, TCP, QUIC}, Spec: scale})
	default:
		return nil, fmt.Errorf("unknown plan %q (want %s, %s or %s)", plan, PlanQuick, PlanFull, PlanSmoke)
	}
	if plan == PlanSmoke {
		// One representative case per scenario: every peer once.
		var smoke []Case
		seen := map[string]bool{}
		for _, c := range cs {
			if c.Scenario == ScenarioBulk && c.Spec.Streams == 1 && !seen[c.Scenario] {
				c.Peers = slices.Clone(AllPeers)
			}
			if !seen[c.Scenario] {
				seen[c.Scenario] = true
				smoke = append(smoke, c)
			}
		}
		cs = smoke
	}
	return cs, nil
}

func plural(n int) string {
	if n == 1 {
		return ""
	}
	return "s"
}

// Filter keeps the cases of the given scenarios and, in each, the given
// peers (nil = all). Cases left without peers are dropped.
func Filter(cs []Case, scenarios, peers []string) []Case {
	var out []Case
	for _, c := range cs {
		if scenarios != nil && !slices.Contains(scenarios, c.Scenario) {
			continue
		}
		if peers != nil {
			c.Peers = slices.DeleteFunc(slices.Clone(c.Peers), func(p string) bool { return !slices.Contains(peers, p) })
		}
		if len(c.Peers) > 0 {
			out = append(out, c)
		}
	}
	return out
}

// validateTemplate checks a case's Spec as the runner will, with the
// per-run fields filled in with placeholders.
func validateTemplate(s peer.Spec) error {
	s.Server = netip.MustParseAddrPort("10.0.0.2:7000")
	s.Client = netip.MustParseAddr("10.0.0.1")
	s.Deadline = time.Now().Add(time.Minute)
	return s.Validate()
}
