package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/flightline/flightline/testnet"
)

// stateDir holds one pid file per network that `testnet up` keeps alive, so
// `testnet down ID` can find the process. It is ours, separate from
// testnet.LockDir, which belongs to the harness.
const stateDir = "/run/flightline-testnet-cli"

// netnsDir is where `ip netns` keeps named namespaces.
const netnsDir = "/var/run/netns"

// runTestnet dispatches `testnet up|down|gc`.
func runTestnet(ctx context.Context, args []string, e *env) error {
	if len(args) == 0 {
		return usagef("want a subcommand: up, down ID, or gc")
	}
	switch args[0] {
	case "up":
		return runTestnetUp(ctx, args[1:], e)
	case "down":
		return runTestnetDown(args[1:], e)
	case "gc":
		return runTestnetGC(args[1:], e)
	case "-h", "--help", "help":
		fmt.Fprint(e.stdout, "usage: flightline testnet up [flags] | down ID | gc\n")
		return errHelp
	}
	return usagef("unknown subcommand %q: want up, down or gc", args[0])
}

// upFlags are the flags of `testnet up`. Impairments apply to both
// directions.
type upFlags struct {
	loss, reorder, duplicate float64
	delay, jitter            time.Duration
	rate                     string
	mtu, queues              int
	seed                     uint64
	hop, foreground, json    bool
}

func (f *upFlags) register(fset *flag.FlagSet) {
	fset.Float64Var(&f.loss, "loss", 0, "drop probability per packet and direction, 0..1")
	fset.DurationVar(&f.delay, "delay", 0, "one-way delay per direction")
	fset.DurationVar(&f.jitter, "jitter", 0, "extra uniform delay in [0,jitter), reorders packets")
	fset.Float64Var(&f.reorder, "reorder", 0, "probability a packet is held behind the next, 0..1")
	fset.Float64Var(&f.duplicate, "duplicate", 0, "probability a packet is sent twice, 0..1")
	fset.StringVar(&f.rate, "rate", "", "rate limit per direction in bits/s, e.g. 100M or 1G (decimal)")
	fset.IntVar(&f.mtu, "mtu", 1500, "MTU of every veth end")
	fset.IntVar(&f.queues, "queues", 1, "rx/tx queues of A's and B's veth ends")
	fset.Uint64Var(&f.seed, "seed", 1, "seed of the userspace hop's decisions")
	fset.BoolVar(&f.hop, "hop", false, "build the middle namespace even without impairment")
	fset.BoolVar(&f.foreground, "foreground", false, "stay in the foreground and delete the network on SIGINT/SIGTERM")
	fset.BoolVar(&f.json, "json", false, "print the network as one JSON object")
}

// netInfo describes a live network for the operator.
type netInfo struct {
	ID      string   `json:"id"`
	PID     int      `json:"pid"`
	A       hostInfo `json:"a"`
	B       hostInfo `json:"b"`
	Middle  string   `json:"middle_namespace,omitempty"`
	Impair  string   `json:"impairment"`
	Message string   `json:"error,omitempty"`
}

type hostInfo struct {
	Namespace string `json:"namespace"`
	Interface string `json:"interface"`
	Addr      string `json:"addr"`
	Addr6     string `json:"addr6"`
	MAC       string `json:"mac"`
}

// readyFD is the file descriptor on which a detached `testnet up` child
// reports its network (or its error) to the parent.
const readyFD = 3

func runTestnetUp(ctx context.Context, args []string, e *env) error {
	var f upFlags
	fset := newFlagSet("testnet up", "[--loss P] [--delay D] [--jitter D] [--rate BITS] [--foreground] [flags]", e)
	f.register(fset.FlagSet)
	// --detached-child (first argument, added by detachUp) marks the keeper
	// process; it is not a user flag, so it is not in the FlagSet's help.
	child := len(args) > 0 && args[0] == "--detached-child"
	if child {
		args = args[1:]
	}
	if err := fset.parse(args); err != nil {
		return err
	}
	if fset.NArg() > 0 {
		return usagef("unexpected argument %q", fset.Arg(0))
	}
	cfg, err := f.config()
	if err != nil {
		return err
	}
	if !f.foreground && !child {
		return detachUp(args, e, f.json)
	}
	var report io.Writer = e.stdout
	if child {
		report = os.NewFile(readyFD, "ready")
	}
	n, err := testnet.Setup(cfg)
	if err != nil {
		if child {
			writeJSON(report, netInfo{Message: err.Error()})
		}
		return err
	}
	defer n.Close()
	info := describe(n, cfg, os.Getpid())
	if err := writePID(n.ID); err != nil {
		return err
	}
	defer os.Remove(filepath.Join(stateDir, n.ID+".pid"))
	if child {
		writeJSON(report, info)
		report.(*os.File).Close()
	} else if f.json {
		writeJSON(e.stdout, info)
	} else {
		printNet(e.stdout, info)
		fmt.Fprintln(e.stdout, "press Ctrl-C to delete the network")
	}
	<-ctx.Done()
	return n.Close()
}

// config turns the flags into a testnet.Config.
func (f *upFlags) config() (testnet.Config, error) {
	rate, err := parseRate(f.rate)
	if err != nil {
		return testnet.Config{}, usagef("--rate: %v", err)
	}
	for name, p := range map[string]float64{"loss": f.loss, "reorder": f.reorder, "duplicate": f.duplicate} {
		if p < 0 || p > 1 || math.IsNaN(p) {
			return testnet.Config{}, usagef("--%s %v: want a probability in 0..1", name, p)
		}
	}
	if f.delay < 0 || f.jitter < 0 {
		return testnet.Config{}, usagef("--delay and --jitter must not be negative")
	}
	imp := testnet.Impairment{Loss: f.loss, Rate: rate, Delay: f.delay, Jitter: f.jitter,
		Reorder: f.reorder, Duplicate: f.duplicate, Seed: f.seed}
	bToA := imp
	bToA.Seed = f.seed + 1
	return testnet.Config{MTU: f.mtu, Queues: f.queues, AtoB: imp, BtoA: bToA, Hop: f.hop}, nil
}

// parseRate parses bits per second: "100M", "1G", "2.5Gbit", "500000".
func parseRate(s string) (int64, error) {
	t := strings.ToLower(strings.TrimSpace(s))
	if t == "" {
		return 0, nil
	}
	for _, suf := range []string{"bit/s", "bps", "bit"} {
		t = strings.TrimSuffix(t, suf)
	}
	mult := 1.0
	switch {
	case strings.HasSuffix(t, "k"):
		mult = 1e3
	case strings.HasSuffix(t, "m"):
		mult = 1e6
	case strings.HasSuffix(t, "g"):
		mult = 1e9
	}
	if mult != 1 {
		t = t[:len(t)-1]
	}
	v, err := strconv.ParseFloat(t, 64)
	if err != nil || v < 0 || math.IsInf(v, 0) || math.IsNaN(v) || v*mult > math.MaxInt64/2 {
		return 0, fmt.Errorf("%q: want bits per second such as 100M or 1G", s)
	}
	return int64(v * mult), nil
}

// detachUp re-runs `testnet up` as a detached child in its own session that
// keeps the network alive (the harness's lock and the impairment hop live
// in a process), waits for it to report the network, prints it and returns.
func detachUp(args []string, e *env, asJSON bool) error {
	exe, err := os.Executable()
	if err != nil {
		return fmt.Errorf("find own executable: %w", err)
	}
	r, w, err := os.Pipe()
	if err != nil {
		return fmt.Errorf("pipe: %w", err)
	}
	defer r.Close()
	devnull, err := os.OpenFile(os.DevNull, os.O_RDWR, 0)
	if err != nil {
		w.Close()
		return fmt.Errorf("open %s: %w", os.DevNull, err)
	}
	defer devnull.Close()
	cmd := exec.Command(exe, append([]string{"testnet", "up", "--detached-child"}, args...)...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = devnull, devnull, devnull
	cmd.ExtraFiles = []*os.File{w} // becomes fd 3 == readyFD
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	err = cmd.Start()
	w.Close()
	if err != nil {
		return fmt.Errorf("start keeper process: %w", err)
	}
	var info netInfo
	line, rerr := bufio.NewReader(r).ReadBytes('\n')
	if rerr != nil && len(line) == 0 {
		cmd.Wait()
		return errors.New("keeper process exited without reporting a network")
	}
	if err := json.Unmarshal(line, &info); err != nil {
		return fmt.Errorf("keeper process report: %w", err)
	}
	if info.Message != "" {
		cmd.Wait()
		return errors.New(info.Message)
	}
	cmd.Process.Release() // it outlives us on purpose
	if asJSON {
		return writeJSON(e.stdout, info)
	}
	printNet(e.stdout, info)
	fmt.Fprintf(e.stdout, "'flightline testnet down %s' deletes it\n", info.ID)
	return nil
}

func describe(n *testnet.Network, cfg testnet.Config, pid int) netInfo {
	h := func(x *testnet.Host) hostInfo {
		return hostInfo{Namespace: x.NS, Interface: x.Ifname, Addr: x.Addr.String(), Addr6: x.Addr6.String(), MAC: x.MAC.String()}
	}
	info := netInfo{ID: n.ID, PID: pid, A: h(n.A), B: h(n.B), Impair: describeImpairment(cfg.AtoB)}
	if _, err := os.Stat(filepath.Join(netnsDir, n.ID+"m")); err == nil {
		info.Middle = n.ID + "m"
	}
	return info
}

func describeImpairment(imp testnet.Impairment) string {
	var parts []string
	if imp.Loss > 0 {
		parts = append(parts, fmt.Sprintf("loss %g%%", imp.Loss*100))
	}
	if imp.Delay > 0 {
		parts = append(parts, "delay "+imp.Delay.String())
	}
	if imp.Jitter > 0 {
		parts = append(parts, "jitter "+imp.Jitter.String())
	}
	if imp.Rate > 0 {
		parts = append(parts, fmt.Sprintf("rate %g Mbit/s", float64(imp.Rate)/1e6))
	}
	if imp.Reorder > 0 {
		parts = append(parts, fmt.Sprintf("reorder %g%%", imp.Reorder*100))
	}
	if imp.Duplicate > 0 {
		parts = append(parts, fmt.Sprintf("duplicate %g%%", imp.Duplicate*100))
	}
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, ", ") + " (each direction)"
}

func printNet(w io.Writer, n netInfo) {
	fmt.Fprintf(w, "network %s up (kept alive by pid %d)\n", n.ID, n.PID)
	for _, h := range []struct {
		role string
		h    hostInfo
	}{{"A", n.A}, {"B", n.B}} {
		fmt.Fprintf(w, "  %s: namespace %s, interface %s, %s, %s\n", h.role, h.h.Namespace, h.h.Interface, h.h.Addr, h.h.Addr6)
	}
	if n.Middle != "" {
		fmt.Fprintf(w, "  middle namespace %s\n", n.Middle)
	}
	fmt.Fprintf(w, "  impairment: %s\n", n.Impair)
	fmt.Fprintf(w, "  try: ip netns exec %s flightline listen --addr %s:4242 --key KEY --dir DIR --allow-any --interface %s\n",
		n.A.Namespace, n.A.Addr, n.A.Interface)
}

func writePID(id string) error {
	if err := os.MkdirAll(stateDir, 0o755); err != nil {
		return fmt.Errorf("state dir: %w", err)
	}
	if err := os.WriteFile(filepath.Join(stateDir, id+".pid"), []byte(strconv.Itoa(os.Getpid())+"\n"), 0o644); err != nil {
		return fmt.Errorf("pid file: %w", err)
	}
	return nil
}

// validID reports whether id looks like a harness network id.
func validID(id string) bool {
	if len(id) != len(testnet.Prefix)+4 || !strings.HasPrefix(id, testnet.Prefix) {
		return false
	}
	_, err := strconv.ParseUint(id[len(testnet.Prefix):], 16, 16)
	return err == nil && strings.ToLower(id) == id
}

// runTestnetDown stops the process keeping network ID alive (which deletes
// it) and deletes whatever a dead keeper left behind.
func runTestnetDown(args []string, e *env) error {
	fset := newFlagSet("testnet down", "ID", e)
	if err := fset.parse(args); err != nil {
		return err
	}
	if fset.NArg() != 1 {
		return usagef("want exactly one network id, e.g. %s1a2b", testnet.Prefix)
	}
	id := fset.Arg(0)
	if !validID(id) {
		return usagef("%q is not a network id (%s followed by 4 hex digits)", id, testnet.Prefix)
	}
	pidFile := filepath.Join(stateDir, id+".pid")
	_, pidErr := os.Stat(pidFile)
	if pidErr != nil && !stillThere(id) {
		return fmt.Errorf("no network %s", id)
	}
	if b, err := os.ReadFile(pidFile); err == nil {
		pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
		if pid > 0 && isKeeper(pid) {
			if err := syscall.Kill(pid, syscall.SIGTERM); err != nil {
				return fmt.Errorf("stop keeper pid %d: %w", pid, err)
			}
			if !waitGone(id, 10*time.Second) {
				return fmt.Errorf("keeper pid %d did not delete %s within 10s", pid, id)
			}
		}
		os.Remove(pidFile)
	}
	deleted, err := testnet.GC(id)
	if err != nil {
		return fmt.Errorf("delete %s: %w", id, err)
	}
	if stillThere(id) {
		return fmt.Errorf("%s is held by a live process that 'testnet up' did not start (a test?); not deleting it", id)
	}
	if len(deleted) > 0 {
		fmt.Fprintf(e.stdout, "deleted %s (%s)\n", id, strings.Join(deleted, ", "))
	} else {
		fmt.Fprintf(e.stdout, "deleted %s\n", id)
	}
	return nil
}

// isKeeper reports whether pid is a `flightline testnet up` process, so a
// recycled pid of some other program is never signalled.
func isKeeper(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil {
		return false
	}
	args := strings.Split(string(b), "\x00")
	return len(args) >= 3 && args[1] == "testnet" && args[2] == "up"
}

func stillThere(id string) bool {
	for _, role := range []string{"a", "b", "m"} {
		if _, err := os.Stat(filepath.Join(netnsDir, id+role)); err == nil {
			return true
		}
	}
	return false
}

func waitGone(id string, limit time.Duration) bool {
	deadline := time.Now().Add(limit)
	for time.Now().Before(deadline) {
		if !stillThere(id) {
			return true
		}
		time.Sleep(20 * time.Millisecond)
	}
	return false
}

// runTestnetGC deletes namespaces left behind by killed processes.
func runTestnetGC(args []string, e *env) error {
	fset := newFlagSet("testnet gc", "", e)
	if err := fset.parse(args); err != nil {
		return err
	}
	if fset.NArg() > 0 {
		return usagef("unexpected argument %q", fset.Arg(0))
	}
	deleted, err := testnet.GC(testnet.Prefix)
	if len(deleted) > 0 {
		fmt.Fprintf(e.stdout, "deleted %s\n", strings.Join(deleted, " "))
	} else if err == nil {
		fmt.Fprintln(e.stdout, "nothing to delete")
	}
	if err != nil {
		return fmt.Errorf("gc: %w", err)
	}
	return nil
}
