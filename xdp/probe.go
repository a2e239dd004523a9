package xdp

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"

	"golang.org/x/sys/unix"
)

// ErrNotSupported is matched (errors.Is) by every error saying AF_XDP
// cannot work in this environment, so callers fall back to UDP sockets.
var ErrNotSupported = errors.New("xdp: AF_XDP not supported here")

// NotSupportedError names why AF_XDP cannot work. errors.Is(err,
// ErrNotSupported) is true for it; Unwrap gives the underlying error.
type NotSupportedError struct {
	Cause string // short, stable: "not privileged", "no such interface", "kernel lacks AF_XDP"
	Err   error  // underlying error, may be nil
}

func (e *NotSupportedError) Error() string {
	if e.Err == nil {
		return "xdp: " + e.Cause
	}
	return "xdp: " + e.Cause + ": " + e.Err.Error()
}

func (e *NotSupportedError) Unwrap() error        { return e.Err }
func (e *NotSupportedError) Is(target error) bool { return target == ErrNotSupported }

// Capability bits (linux/capability.h).
const (
	capNetAdmin = 12
	capNetRaw   = 13
	capSysAdmin = 21
	capBPF      = 39
)

// probeFacts are the observations Probe decides on; split out so the
// decision is testable without changing privileges.
type probeFacts struct {
	capEff   uint64 // effective capabilities
	capErr   error  // reading them failed
	ifErr    error  // looking the interface up failed
	xskErr   error  // socket(AF_XDP) failed
	haveLink bool   // interface exists
}

// decide turns facts into Probe's answer.
func decide(ifname string, f probeFacts) error {
	if f.capErr != nil {
		return &NotSupportedError{Cause: "cannot read capabilities", Err: f.capErr}
	}
	has := func(c uint) bool { return f.capEff&(1<<c) != 0 }
	if !has(capNetAdmin) || !(has(capBPF) || has(capSysAdmin)) || !has(capNetRaw) {
		return &NotSupportedError{Cause: "not privileged",
			Err: errors.New("need root or CAP_NET_ADMIN+CAP_NET_RAW+CAP_BPF")}
	}
	if f.xskErr != nil {
		if errors.Is(f.xskErr, unix.EAFNOSUPPORT) {
			return &NotSupportedError{Cause: "kernel lacks AF_XDP", Err: f.xskErr}
		}
		return &NotSupportedError{Cause: "cannot create AF_XDP socket", Err: f.xskErr}
	}
	if !f.haveLink {
		return &NotSupportedError{Cause: "no such interface", Err: fmt.Errorf("%q: %w", ifname, f.ifErr)}
	}
	return nil
}

type probeKey struct {
	netns  uint64
	ifname string
}

var probeCache sync.Map // probeKey → error (nil stored as errNil)

var errNil = errors.New("")

// Probe reports whether AF_XDP can work on ifname in the calling thread's
// network namespace: nil, or an error matching ErrNotSupported naming the
// cause (not privileged, no such interface, kernel lacks AF_XDP). Results
// are cached per (namespace, ifname), except "no such interface", which a
// later call may see fixed.
func Probe(ifname string) error {
	key := probeKey{netns: netnsID(), ifname: ifname}
	if v, ok := probeCache.Load(key); ok {
		if v.(error) == errNil {
			return nil
		}
		return v.(error)
	}
	var f probeFacts
	f.capEff, f.capErr = effectiveCaps()
	if fd, err := unix.Socket(unix.AF_XDP, unix.SOCK_RAW|unix.SOCK_CLOEXEC, 0); err != nil {
		f.xskErr = err
	} else {
		unix.Close(fd)
	}
	_, f.ifErr = net.InterfaceByName(ifname)
	f.haveLink = f.ifErr == nil
	err := decide(ifname, f)
	var nse *NotSupportedError
	if err == nil {
		probeCache.Store(key, errNil)
	} else if errors.As(err, &nse) && nse.Cause != "no such interface" {
		probeCache.Store(key, err)
	}
	return err
}

// netnsID identifies the calling thread's network namespace (its inode).
func netnsID() uint64 {
	var st unix.Stat_t
	if err := unix.Stat("/proc/thread-self/ns/net", &st); err != nil {
		return 0
	}
	return st.Ino
}

func effectiveCaps() (uint64, error) {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "CapEff:"); ok {
			return strconv.ParseUint(strings.TrimSpace(v), 16, 64)
		}
	}
	return 0, errors.New("no CapEff in /proc/self/status")
}
