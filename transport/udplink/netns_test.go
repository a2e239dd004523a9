package udplink

import (
	"fmt"
	"github.com/stretchr/testify/require"
	"os"
	"os/exec"
	"runtime"
	"testing"

	"golang.org/x/sys/unix"
)

// needRoot skips (or, under CI, fails) a test that needs root.
func needRoot(t *testing.T, why string) {
	t.Helper()
	if os.Geteuid() == 0 {
		return
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("CI runs as root, but euid is %d: %s", os.Geteuid(), why)
	}
	t.Skipf("needs root: %s", why)
}

// listenInNetns creates a fresh network namespace whose loopback is shaped
// by a tbf qdisc of the given rate, and opens two Links inside it. The
// namespace is anonymous: it lives on only through the sockets (the thread
// that entered it exits), so closing the Links deletes it, also on failure.
func listenInNetns(t *testing.T, rate string, txCfg, rxCfg Config) (tx, rx *Link) {
	t.Helper()
	type result struct {
		tx, rx *Link
		err    error
	}
	c := make(chan result, 1)
	go func() {
		// Never unlocked: the runtime terminates this thread when the
		// goroutine exits, so no other goroutine runs in the namespace.
		runtime.LockOSThread()
		c <- func() result {
			if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
				return result{err: fmt.Errorf("unshare: %w", err)}
			}
			// Children fork from this thread, so they see the namespace.
			for _, args := range [][]string{
				{"ip", "link", "set", "lo", "up"},
				{"tc", "qdisc", "add", "dev", "lo", "root", "tbf", "rate", rate, "burst", "128kb", "limit", "16mb"},
			} {
				if out, err := exec.Command(args[0], args[1:]...).CombinedOutput(); err != nil {
					return result{err: fmt.Errorf("%v: %w: %s", args, err, out)}
				}
			}
			tx, err := Listen(loop4, txCfg)
			if err != nil {
				return result{err: err}
			}
			rx, err := Listen(loop4, rxCfg)
			if err != nil {
				_ = tx.Close()
				return result{err: err}
			}
			return result{tx: tx, rx: rx}
		}()
	}()
	r := <-c
	if r.err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("network namespace setup: %v", r.err)
		}
		t.Skipf("network namespace setup: %v", r.err)
	}
	t.Cleanup(func() { _ = r.tx.Close(); _ = r.rx.Close() })
	return r.tx, r.rx
}

// TestPartialSendWaits: on a rate-limited loopback with a small send buffer,
// sendmmsg sends only part of a batch and then returns EAGAIN; WriteBatch
// must park on the netpoller, continue, and deliver everything in order.
// (On an unshaped loopback the kernel frees each skb during the send, so
// EAGAIN never happens there.)
func TestPartialSendWaits(t *testing.T) {
	needRoot(t, "creates a network namespace with a tbf qdisc on its loopback")
	for _, gso := range []bool{false, true} {
		t.Run(fmt.Sprintf("gso=%v", gso), func(t *testing.T) {
			tx, rx := listenInNetns(t, "40mbit", Config{DisableGSO: !gso, SocketBuffer: 16 << 10}, Config{})
			payloads := testPayloads(9, 400)
			done := make(chan []received, 1)
			go func() { done <- recvN(t, rx, len(payloads), 64) }()
			sendAll(t, tx, rx.LocalAddr(), payloads, 64)
			checkSame(t, payloads, <-done, tx.LocalAddr())
			st := tx.Stats()
			batches := uint64((len(payloads) + 63) / 64)
			require.Zero(t, st.SendErrors)
			require.Less(t, batches, st.SyscallsOut, "expected EAGAIN and resumed sends")
			t.Logf("%d batches, %d sendmmsg calls, %d GSO sends", batches, st.SyscallsOut, st.GSOSends)
		})
	}
}
