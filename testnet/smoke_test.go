package testnet

import (
	"net/netip"
	"testing"

)

func TestSmoke(t *testing.T) {
	for _, hop := range []bool{false, true} {
		n := New(t, Config{Hop: hop})
		t.Logf("%+v %+v", *n.A, *n.B)
		ping(t, n.A, n.B.Addr)
		for _, v6 := range []bool{false, true} {
			a, b := n.A.Addr, n.B.Addr
			if v6 {
				a, b = n.A.Addr6, n.B.Addr6
			}
			ca := listenUDP(t, n.A, a)
			cb := listenUDP(t, n.B, b)
			go echo(cb)
			d := roundTrip(t, ca, addrPort(cb), []byte("hello"))
			t.Log(d)
		}
		t.Logf("%+v", n.Stats())
		_ = netip.Addr{}
		require.NoError(t, n.Close())
	}
}
