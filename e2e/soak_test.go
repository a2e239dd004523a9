package e2e

import (
	"net"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/flightline/flightline/testnet"
	"github.com/stretchr/testify/require"
)

// soakPerDatapath is how much each datapath moves in TestVethSoak; over the
// four rows the test moves 1 GiB. A full GiB per row does not fit the
// package's time budget: at 5 % loss goodput is ~100 Mbit/s (stall-bound,
// see lossyMinRTO), so 4 GiB would take ~6 minutes on its own.
const soakPerDatapath = 256 * MiB

// TestVethSoak pushes data through 5 % loss plus reordering and duplication
// each way, checks SHA-256 per stream, and then that closing everything
// leaks no goroutines, file descriptors or namespaces.
func TestVethSoak(t *testing.T) {
	testnet.RequirePrivileged(t)
	warmUp(t)
	var moved int64
	for i, dp := range datapaths {
		t.Run(dp.name, func(t *testing.T) {
			total := sized(soakPerDatapath, 32*MiB, 16*MiB)
			goroutines, fds := runtime.NumGoroutine(), fdCount(t)
			imp := func(seed uint64) testnet.Impairment {
				return testnet.Impairment{Loss: 0.05, Reorder: 0.05, Duplicate: 0.05, Seed: seed}
			}
			n, err := testnet.Setup(testnet.Config{AtoB: imp(uint64(10 + 2*i)), BtoA: imp(uint64(11 + 2*i))})
			require.NoError(t, err)
			t.Cleanup(func() { n.Close() })

			p := connect(t, n, dp, lossyConfig(t), lossyConfig(t))
			r := transfer(t, p, 8, total/8, 5, 150*time.Second)
			moved += r.bytes
			logStats(t, "soak", p, n, r)
			requireDrained(t, p)

			require.NoError(t, p.cc.CloseContext(t.Context()))
			require.NoError(t, p.client.Close())
			require.NoError(t, p.server.Close())
			require.NoError(t, n.Close())
			var stack string
			eventually(t, 5*time.Second, func() bool {
				if runtime.NumGoroutine() <= goroutines {
					return true
				}
				buf := make([]byte, 1<<20)
				stack = string(buf[:runtime.Stack(buf, true)])
				return false
			}, "goroutines: %d before, %d after close:\n%s", goroutines, runtime.NumGoroutine(), stack)
			eventually(t, 5*time.Second, func() bool { return fdCount(t) <= fds },
				"file descriptors: %d before, %d after close", fds, fdCount(t))
			out, err := exec.Command("ip", "netns", "list").CombinedOutput()
			require.NoError(t, err, "ip netns list: %s", out)
			for _, line := range strings.Split(string(out), "\n") {
				require.False(t, strings.HasPrefix(line, n.ID), "namespace %q left after Close", line)
			}
		})
	}
	t.Logf("soak moved %d MiB in total", moved/MiB)
}

// warmUp makes the runtime open what it keeps for the process's lifetime
// (the netpoller's epoll and eventfd) before leak baselines are taken.
func warmUp(t *testing.T) {
	c, err := net.ListenPacket("udp", "127.0.0.1:0")
	require.NoError(t, err)
	c.Close()
}

// fdCount is the number of open file descriptors of this process.
func fdCount(t testing.TB) int {
	ents, err := os.ReadDir("/proc/self/fd")
	require.NoError(t, err, "read /proc/self/fd")
	return len(ents)
}
