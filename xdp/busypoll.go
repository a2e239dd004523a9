package xdp

import (
	"errors"
	"fmt"
	"time"

	"golang.org/x/sys/unix"
)

// BusyPollMode selects whether the sockets use preferred busy polling.
type BusyPollMode int

const (
	// BusyPollOff (default): ReadBatch sleeps in poll(2) when the rings
	// are empty and interrupts drive the driver.
	BusyPollOff BusyPollMode = iota
	// BusyPollPrefer turns busy polling on when the kernel allows it
	// (Linux ≥ 5.11, and CAP_NET_ADMIN for a budget above the default) and
	// otherwise logs why and runs without it.
	BusyPollPrefer
	// BusyPollRequire fails Listen when busy polling cannot be turned on.
	BusyPollRequire
)

// BusyPoll configures preferred busy polling (SO_PREFER_BUSY_POLL,
// SO_BUSY_POLL, SO_BUSY_POLL_BUDGET on every AF_XDP socket). With it on,
// ReadBatch drives the driver's NAPI from its own thread with non-blocking
// recvfrom calls for up to Spin before it sleeps in poll(2), which trades a
// core for lower and steadier latency. It only pays off when the NIC defers
// its interrupts (sysctls in docs/afxdp.md: napi_defer_hard_irqs,
// gro_flush_timeout), since otherwise interrupts run NAPI anyway.
type BusyPoll struct {
	Mode BusyPollMode
	// Timeout is SO_BUSY_POLL: how long one busy-poll call may spin in
	// the kernel. Default 20 µs.
	Timeout time.Duration
	// Budget is SO_BUSY_POLL_BUDGET, packets per busy-poll call. Default
	// 64 (values above 64 need CAP_NET_ADMIN).
	Budget int
	// Spin is how long ReadBatch keeps busy polling empty rings before it
	// sleeps in poll(2). Default 200 µs.
	Spin time.Duration
}

func (b *BusyPoll) setDefaults() error {
	if b.Mode < BusyPollOff || b.Mode > BusyPollRequire {
		return fmt.Errorf("xdp: unknown BusyPoll.Mode %d", b.Mode)
	}
	if b.Timeout == 0 {
		b.Timeout = 20 * time.Microsecond
	}
	if b.Budget == 0 {
		b.Budget = 64
	}
	if b.Spin == 0 {
		b.Spin = 200 * time.Microsecond
	}
	if b.Timeout < time.Microsecond || b.Timeout > time.Second || b.Budget < 1 || b.Budget > 65535 || b.Spin < 0 {
		return fmt.Errorf("xdp: BusyPoll %+v: Timeout must be 1µs..1s, Budget 1..65535, Spin ≥ 0", *b)
	}
	return nil
}

// ErrBusyPoll is wrapped by the error Listen returns when BusyPollRequire
// cannot be met.
var ErrBusyPoll = errors.New("xdp: busy polling unavailable")

// setsockoptInt is unix.SetsockoptInt; a variable so tests can inject the
// errors of old kernels and missing privileges.
var setsockoptInt = unix.SetsockoptInt

// enableBusyPoll sets the three socket options on fd. It reports the first
// failure with the option's name; ENOPROTOOPT means the kernel predates
// them (5.11), EPERM a budget above the default without CAP_NET_ADMIN.
func enableBusyPoll(fd int, b BusyPoll) error {
	for _, o := range []struct {
		name string
		opt  int
		val  int
	}{
		{"SO_PREFER_BUSY_POLL", unix.SO_PREFER_BUSY_POLL, 1},
		{"SO_BUSY_POLL", unix.SO_BUSY_POLL, int(b.Timeout / time.Microsecond)},
		{"SO_BUSY_POLL_BUDGET", unix.SO_BUSY_POLL_BUDGET, b.Budget},
	} {
		if err := setsockoptInt(fd, unix.SOL_SOCKET, o.opt, o.val); err != nil {
			hint := ""
			switch {
			case errors.Is(err, unix.ENOPROTOOPT) || errors.Is(err, unix.EINVAL):
				hint = " (needs Linux ≥ 5.11)"
			case errors.Is(err, unix.EPERM):
				hint = " (needs CAP_NET_ADMIN)"
			}
			return fmt.Errorf("%w: set %s=%d%s: %w", ErrBusyPoll, o.name, o.val, hint, err)
		}
	}
	return nil
}

// busyPollSockets applies cfg to every socket: all of them or, on a
// failure, none (the options are cleared again), so the link never runs
// half busy-polled. It returns whether busy polling is on.
func busyPollSockets(fds []int, b BusyPoll, logf func(string, ...any)) (bool, error) {
	if b.Mode == BusyPollOff {
		return false, nil
	}
	for i, fd := range fds {
		err := enableBusyPoll(fd, b)
		if err == nil {
			continue
		}
		for _, f := range fds[:i+1] {
			setsockoptInt(f, unix.SOL_SOCKET, unix.SO_PREFER_BUSY_POLL, 0)
			setsockoptInt(f, unix.SOL_SOCKET, unix.SO_BUSY_POLL, 0)
		}
		if b.Mode == BusyPollRequire {
			return false, err
		}
		if logf != nil {
			logf("xdp: busy polling off, falling back to interrupts and poll(2): %v", err)
		}
		return false, nil
	}
	return true, nil
}

// wake makes the kernel process the socket's RX side: a non-blocking
// recvfrom, which busy polls the queue's NAPI when SO_BUSY_POLL is set and
// wakes a zero-copy driver that set NEED_WAKEUP on the fill ring.
func (s *socket) wake() {
	unix.Syscall6(unix.SYS_RECVFROM, uintptr(s.fd), 0, 0, unix.MSG_DONTWAIT, 0, 0)
}
