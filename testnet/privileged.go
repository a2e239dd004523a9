package testnet

import (
	"fmt"
	"os"
	"os/exec"
	"testing"

	"golang.org/x/sys/unix"
)

// Privileged reports nil if this process can build namespaces: it has
// CAP_SYS_ADMIN (netns creation, BPF) and CAP_NET_ADMIN (links, qdiscs) in
// its effective set and `ip` (iproute2) is on PATH. Otherwise it returns the
// exact reason. `tc` is only needed for rate limits and is checked when used.
func Privileged() error {
	var hdr = unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	if err := unix.Capget(&hdr, &data[0]); err != nil {
		return fmt.Errorf("testnet: read capabilities: %w", err)
	}
	has := func(c uint) bool { return data[c/32].Effective&(1<<(c%32)) != 0 }
	for _, c := range []struct {
		bit  uint
		name string
	}{{unix.CAP_SYS_ADMIN, "CAP_SYS_ADMIN"}, {unix.CAP_NET_ADMIN, "CAP_NET_ADMIN"}} {
		if !has(c.bit) {
			return fmt.Errorf("testnet: not privileged: %s missing from the effective set (euid %d); run as root", c.name, os.Geteuid())
		}
	}
	if _, err := exec.LookPath("ip"); err != nil {
		return fmt.Errorf("testnet: iproute2 `ip` not found on PATH (apt-get install -y iproute2): %w", err)
	}
	return nil
}

// RequirePrivileged skips the test with the exact reason when Privileged()
// fails, but calls t.Fatal instead when the environment has CI=true, so a
// broken CI setup cannot silently skip privileged tests.
func RequirePrivileged(t testing.TB) {
	t.Helper()
	requirePrivileged(t, Privileged(), os.Getenv("CI"))
}

// tb is the part of testing.TB requirePrivileged uses, so tests can check the
// decision without failing themselves.
type tb interface {
	Helper()
	Skip(args ...any)
	Fatal(args ...any)
}

func requirePrivileged(t tb, err error, ci string) {
	t.Helper()
	switch {
	case err == nil:
	case ci == "true":
		t.Fatal(fmt.Errorf("CI=true but privileged test cannot run: %w", err))
	default:
		t.Skip(err.Error())
	}
}
