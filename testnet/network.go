package testnet

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// Config describes a network. The zero value is a plain 1500-byte,
// single-queue veth pair with no impairment.
type Config struct {
	// MTU of every veth end. Default 1500; valid 68..65535.
	MTU int
	// Queues is the rx/tx queue count of A's and B's veth ends. Default 1:
	// on a multi-queue veth a flow arrives on the sender's hashed queue, so
	// an AF_XDP socket on queue 0 silently misses it. Valid 1..64.
	Queues int
	// TxChecksumOffload leaves tx-checksum-ip-generic on. Default false:
	// it is turned off on every veth end so frames carry full UDP checksums,
	// which AF_XDP receivers need (kernel UDP over veth otherwise arrives
	// CHECKSUM_PARTIAL with only the pseudo-header sum in the frame).
	TxChecksumOffload bool
	// AtoB and BtoA are the per-direction impairments; zero value = none.
	AtoB, BtoA Impairment
	// Hop builds the A <-> M <-> B topology even when both impairments are
	// zero, so SetImpairment can add impairment later and Stats counts
	// packets. Any non-zero impairment implies it.
	//
	// Impairment is always applied in M, never on A's or B's interfaces, so
	// tests can attach their own XDP programs there and AF_XDP transmit is
	// impaired too. Without a hop, A's and B's veth ends are peers.
	Hop bool
	// Router puts A and B on different IPv4 subnets (10.x.y.0/25 and
	// 10.x.y.128/25) with a router namespace R between them that forwards
	// with the kernel's IP stack. Each host has a default route via R
	// (Host.Gateway) and no static neighbours, so ARP runs for real: the
	// topology of a server answering a client behind a router. IPv6 is not
	// configured (Host.Addr6 stays invalid). It cannot be combined with Hop
	// or impairments.
	Router bool
}

func (c Config) withDefaults() (Config, error) {
	if c.MTU == 0 {
		c.MTU = 1500
	}
	if c.Queues == 0 {
		c.Queues = 1
	}
	if c.MTU < 68 || c.MTU > 65535 {
		return c, fmt.Errorf("testnet: MTU %d outside 68..65535", c.MTU)
	}
	if c.Queues < 1 || c.Queues > 64 {
		return c, fmt.Errorf("testnet: Queues %d outside 1..64", c.Queues)
	}
	if c.Router && (c.Hop || !c.AtoB.isZero() || !c.BtoA.isZero()) {
		return c, errors.New("testnet: Router cannot be combined with Hop or impairment")
	}
	if err := c.AtoB.validate(); err != nil {
		return c, fmt.Errorf("testnet: AtoB: %w", err)
	}
	if err := c.BtoA.validate(); err != nil {
		return c, fmt.Errorf("testnet: BtoA: %w", err)
	}
	return c, nil
}

// Host is one end of a network.
type Host struct {
	NS      string     // namespace name
	Ifname  string     // its veth end
	Ifindex int        // ifindex of Ifname inside NS
	Addr    netip.Addr // IPv4 10.x.y.1 (A) or 10.x.y.2 (B), /24, unique per live network
	Addr6   netip.Addr // IPv6 ULA fd00:x:y::1 or ::2, /64, added with nodad
	// MAC is the host's own MAC. PeerMAC is the destination MAC frames to the
	// other host must carry: the other host's MAC, also through a hop, which
	// is transparent at layer 2. Static (permanent) neighbour entries for the
	// peer's Addr and Addr6 are installed, so there is no ARP/ND.
	MAC, PeerMAC net.HardwareAddr
	// Gateway is the router's address on this host's subnet with
	// Config.Router (PeerMAC is then the router's MAC on this side, and no
	// neighbour entry is static); invalid otherwise.
	Gateway netip.Addr
}

// Run runs fn on a locked OS thread that has setns'd into h.NS and returns
// its error. The thread is never returned to the scheduler's pool (it exits
// with the goroutine), so no other goroutine ever runs in the wrong netns.
// Sockets, links and ifindex lookups made inside fn belong to h.NS and may
// be used from any goroutine afterwards.
func (h *Host) Run(fn func() error) error { return runInNetns(h.NS, fn) }

func runInNetns(ns string, fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		// No UnlockOSThread: a thread whose netns was changed must die
		// with this goroutine rather than serve other goroutines.
		runtime.LockOSThread()
		fd, err := unix.Open(filepath.Join(netnsDir, ns), unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			errc <- fmt.Errorf("open netns %s: %w", ns, err)
			return
		}
		err = unix.Setns(fd, unix.CLONE_NEWNET)
		_ = unix.Close(fd)
		if err != nil {
			errc <- fmt.Errorf("setns %s: %w", ns, err)
			return
		}
		errc <- fn()
	}()
	return <-errc
}

// Network is a live test network. Close it (New does so in t.Cleanup).
type Network struct {
	A, B *Host
	// ID is Prefix plus 4 hex digits; every name of this network starts with it.
	ID string

	cfg Config
	res *reservation
	// hop is nil without the middle namespace. Directions are indexed 0 =
	// A to B, 1 = B to A.
	hop *middle
	// router is R's namespace with Config.Router, "" otherwise.
	router string

	closeOnce sync.Once
	closeErr  error
}

// New builds a network for a test and closes it in t.Cleanup. It skips (or
// fails under CI=true) without privileges, and fails the test on error.
func New(t testing.TB, cfg Config) *Network {
	t.Helper()
	RequirePrivileged(t)
	n, err := Setup(cfg)
	if err != nil {
		t.Fatalf("testnet: %v", err)
	}
	t.Cleanup(func() {
		if err := n.Close(); err != nil {
			t.Errorf("testnet: close %s: %v", n.ID, err)
		}
	})
	return n
}

// Setup builds a network; the caller must Close it. On error, everything
// created so far is deleted.
func Setup(cfg Config) (_ *Network, err error) {
	if err := Privileged(); err != nil {
		return nil, err
	}
	cfg, err = cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	seed := uint64(time.Now().UnixNano())
	res, err := reserve(rand.New(rand.NewPCG(seed, uint64(os.Getpid()))))
	if err != nil {
		return nil, fmt.Errorf("testnet: %w", err)
	}
	n := &Network{ID: res.id, cfg: cfg, res: res}
	defer func() {
		if err != nil {
			_ = n.Close()
			err = fmt.Errorf("testnet: setup %s: %w", n.ID, err)
		}
	}()
	x, y := byte(res.num>>8), byte(res.num)
	mac := func(k byte) net.HardwareAddr { return net.HardwareAddr{0x02, 0xf1, x, y, 0x00, k} }
	host := func(role string, k byte) *Host {
		return &Host{
			NS: n.ID + role, Ifname: n.ID + role,
			Addr:  netip.AddrFrom4([4]byte{10, x, y, k}),
			Addr6: netip.MustParseAddr(fmt.Sprintf("fd00:%x:%x::%d", x, y, k)),
			MAC:   mac(k),
		}
	}
	n.A, n.B = host("a", 1), host("b", 2)
	n.A.PeerMAC, n.B.PeerMAC = n.B.MAC, n.A.MAC
	needHop := cfg.Hop || !cfg.AtoB.isZero() || !cfg.BtoA.isZero()

	for _, ns := range []string{n.A.NS, n.B.NS} {
		if err := run("ip", "netns", "add", ns); err != nil {
			return nil, err
		}
	}
	q := fmt.Sprint(cfg.Queues)
	mtu := fmt.Sprint(cfg.MTU)
	veth := func(if1, ns1 string, mac1 net.HardwareAddr, q1 string, if2, ns2 string, mac2 net.HardwareAddr, q2 string) error {
		return run("ip", "link", "add", if1, "address", mac1.String(), "mtu", mtu,
			"numtxqueues", q1, "numrxqueues", q1, "netns", ns1, "type", "veth",
			"peer", "name", if2, "address", mac2.String(), "mtu", mtu,
			"numtxqueues", q2, "numrxqueues", q2, "netns", ns2)
	}
	if cfg.Router {
		if err := n.setupRouter(mac, veth); err != nil {
			return nil, err
		}
		return n, nil
	}
	if !needHop {
		if err := veth(n.A.Ifname, n.A.NS, n.A.MAC, q, n.B.Ifname, n.B.NS, n.B.MAC, q); err != nil {
			return nil, err
		}
	} else {
		m := &middle{ns: n.ID + "m", ifname: [2]string{n.ID + "ma", n.ID + "mb"}}
		n.hop = m
		if err := run("ip", "netns", "add", m.ns); err != nil {
			return nil, err
		}
		if err := veth(n.A.Ifname, n.A.NS, n.A.MAC, q, m.ifname[0], m.ns, mac(3), "1"); err != nil {
			return nil, err
		}
		if err := veth(m.ifname[1], m.ns, mac(4), "1", n.B.Ifname, n.B.NS, n.B.MAC, q); err != nil {
			return nil, err
		}
	}
	for _, h := range []*Host{n.A, n.B} {
		peer := n.B
		if h == n.B {
			peer = n.A
		}
		if err := h.configure(peer, cfg.TxChecksumOffload); err != nil {
			return nil, err
		}
	}
	if n.hop != nil {
		if err := n.hop.start(cfg); err != nil {
			return nil, err
		}
		if err := waitUp(n.hop.ns, n.hop.ifname[:]...); err != nil {
			return nil, err
		}
	}
	for _, h := range []*Host{n.A, n.B} {
		if err := waitUp(h.NS, h.Ifname); err != nil {
			return nil, err
		}
	}
	return n, nil
}

// waitUp waits until each interface in ns has carrier and its real qdisc.
// A veth set up while its peer is down keeps the noop qdisc until linkwatch
// handles the carrier-on event (asynchronously), and frames sent before that
// vanish. Operstate is not waited for: linkwatch may update it up to a second
// later, and nothing on the data path depends on it.
func waitUp(ns string, ifnames ...string) error {
	deadline := time.Now().Add(5 * time.Second)
	for {
		out, err := exec.Command("ip", "-n", ns, "-j", "link", "show").Output()
		if err != nil {
			return fmt.Errorf("ip -n %s link show: %w", ns, err)
		}
		var links []struct {
			Ifname    string   `json:"ifname"`
			Flags     []string `json:"flags"`
			Operstate string   `json:"operstate"`
			Qdisc     string   `json:"qdisc"`
		}
		if err := json.Unmarshal(out, &links); err != nil {
			return fmt.Errorf("parse ip link output: %w", err)
		}
		ready := 0
		var state []string
		for _, l := range links {
			if slices.Contains(ifnames, l.Ifname) {
				state = append(state, l.Ifname+":"+l.Operstate+"/"+l.Qdisc)
				if slices.Contains(l.Flags, "LOWER_UP") && l.Qdisc != "noop" {
					ready++
				}
			}
		}
		if ready == len(ifnames) {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("interfaces in %s not up after 5s: %v", ns, state)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// configure sets addresses, static neighbours, link state and checksum
// offload inside h.NS, and reads the ifindex.
func (h *Host) configure(peer *Host, txCsum bool) error {
	cmds := []string{
		fmt.Sprintf("addr add %s/24 dev %s", h.Addr, h.Ifname),
		fmt.Sprintf("addr add %s/64 dev %s nodad", h.Addr6, h.Ifname),
		fmt.Sprintf("neigh replace %s lladdr %s dev %s nud permanent", peer.Addr, h.PeerMAC, h.Ifname),
		fmt.Sprintf("neigh replace %s lladdr %s dev %s nud permanent", peer.Addr6, h.PeerMAC, h.Ifname),
		"link set lo up",
		fmt.Sprintf("link set %s up", h.Ifname),
	}
	if err := ipBatch(h.NS, cmds); err != nil {
		return err
	}
	return h.Run(func() error {
		ifc, err := net.InterfaceByName(h.Ifname)
		if err != nil {
			return fmt.Errorf("look up %s: %w", h.Ifname, err)
		}
		h.Ifindex = ifc.Index
		if !txCsum {
			return setTxChecksum(h.Ifname, false)
		}
		return nil
	})
}

// Close deletes the network: it stops the hop, releases BPF objects and
// deletes the namespaces, which destroys the veth pairs with them. Sockets a
// test still holds keep their (now unnamed) namespace alive until closed. It
// is idempotent.
func (n *Network) Close() error {
	n.closeOnce.Do(func() {
		var errs []error
		if n.hop != nil {
			n.hop.stop()
		}
		for _, ns := range n.namespaces() {
			if err := deleteNetns(ns); err != nil {
				errs = append(errs, err)
			}
		}
		n.res.release()
		n.closeErr = errors.Join(errs...)
	})
	return n.closeErr
}

func (n *Network) namespaces() []string {
	ns := []string{n.ID + "a", n.ID + "b"}
	if n.hop != nil {
		ns = append(ns, n.hop.ns)
	}
	if n.router != "" {
		ns = append(ns, n.router)
	}
	return ns
}

// deleteNetns does what `ip netns del` does: detach the bind mount that
// keeps the namespace alive and remove the file. Missing is not an error.
func deleteNetns(name string) error {
	path := filepath.Join(netnsDir, name)
	if err := unix.Unmount(path, unix.MNT_DETACH); err != nil && !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOENT) {
		return fmt.Errorf("unmount netns %s: %w", name, err)
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("remove netns %s: %w", name, err)
	}
	return nil
}

// run executes a command and wraps its output into the error.
func run(name string, args ...string) error {
	return runIn(nil, name, args...)
}

func runIn(stdin []byte, name string, args ...string) error {
	cmd := exec.Command(name, args...)
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, bytes.TrimSpace(out))
	}
	return nil
}

// ipBatch runs ip commands inside ns with one exec.
func ipBatch(ns string, cmds []string) error {
	return runIn([]byte(strings.Join(cmds, "\n")+"\n"), "ip", "-n", ns, "-batch", "-")
}
