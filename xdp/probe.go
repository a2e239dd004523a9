package xdp

import (
	"errors"
	"fmt"
	"net"
	"sync"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/features"
	"golang.org/x/sys/unix"
)

// ErrNotSupported is matched (errors.Is) by every error saying AF_XDP
// cannot work in this environment, so callers fall back to UDP sockets.
var ErrNotSupported = errors.New("xdp: AF_XDP not supported here")

// NotSupportedError names why AF_XDP cannot work. errors.Is(err,
// ErrNotSupported) is true for it; Unwrap gives the underlying error.
type NotSupportedError struct {
	Cause string // short, stable: "not privileged", "no such interface", "kernel lacks AF_XDP", "kernel lacks XDP programs"
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

// probeFacts are the observations Probe decides on; split out so the
// decision is testable without changing privileges or kernels.
type probeFacts struct {
	progErr  error // features.HaveProgramType(ebpf.XDP)
	mapErr   error // features.HaveMapType(ebpf.XSKMap)
	xskErr   error // socket(AF_XDP) failed
	ifErr    error // looking the interface up failed
	haveLink bool  // interface exists
}

// denied reports a probe that failed for lack of privilege (CAP_BPF or
// CAP_SYS_ADMIN for BPF objects, CAP_NET_RAW for the socket).
func denied(err error) bool { return errors.Is(err, unix.EPERM) || errors.Is(err, unix.EACCES) }

// decide turns facts into Probe's answer.
func decide(ifname string, f probeFacts) error {
	for _, p := range []struct {
		err  error
		what string
	}{{f.progErr, "XDP programs"}, {f.mapErr, "XSKMAP maps"}} {
		switch {
		case p.err == nil:
		case errors.Is(p.err, ebpf.ErrNotSupported):
			return &NotSupportedError{Cause: "kernel lacks " + p.what, Err: p.err}
		case denied(p.err):
			return &NotSupportedError{Cause: "not privileged",
				Err: fmt.Errorf("need root or CAP_BPF+CAP_NET_ADMIN+CAP_NET_RAW: %w", p.err)}
		default:
			return &NotSupportedError{Cause: "cannot probe " + p.what, Err: p.err}
		}
	}
	if f.xskErr != nil {
		switch {
		case errors.Is(f.xskErr, unix.EAFNOSUPPORT):
			return &NotSupportedError{Cause: "kernel lacks AF_XDP", Err: f.xskErr}
		case denied(f.xskErr):
			return &NotSupportedError{Cause: "not privileged",
				Err: fmt.Errorf("need CAP_NET_RAW for AF_XDP sockets: %w", f.xskErr)}
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
	// cilium/ebpf loads a minimal program and map of each type (its
	// results are cached per process): this answers both "does the kernel
	// have it" and "may we use it", without parsing capability bits.
	f.progErr = features.HaveProgramType(ebpf.XDP)
	f.mapErr = features.HaveMapType(ebpf.XSKMap)
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
