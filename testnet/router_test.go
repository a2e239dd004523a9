package testnet

import (
	"os"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestRouterPair checks the routed topology: different subnets, a router
// namespace that forwards, default routes, no static neighbours, and that
// Close removes R too.
func TestRouterPair(t *testing.T) {
	n := New(t, Config{Router: true})
	require.NotEqual(t, n.A.Addr, n.B.Addr)
	require.True(t, n.A.Gateway.IsValid() && n.B.Gateway.IsValid())
	require.False(t, n.A.Addr6.IsValid(), "router mode is IPv4 only")
	ping(t, n.A, n.B.Addr)
	ping(t, n.B, n.A.Addr)
	ca, cb := listenUDP(t, n.A, n.A.Addr), listenUDP(t, n.B, n.B.Addr)
	go echo(cb)
	roundTrip(t, ca, addrPort(cb), []byte("through the router"))
	require.Contains(t, n.namespaces(), n.router)
	require.NoError(t, n.Close())
	_, err := os.Stat(netnsDir + "/" + n.router)
	require.True(t, os.IsNotExist(err), "router namespace left behind: %v", err)
	_, err = Setup(Config{Router: true, Hop: true})
	require.Error(t, err, "Router with Hop")
}
