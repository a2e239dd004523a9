package xdp

import (
	"net"
	"net/netip"
	"testing"
	"time"
)

// newTestResolver is a resolver without sockets or goroutines: tests drive
// next and settle directly and read the request channel.
func newTestResolver() *resolver {
	return &resolver{reqs: make(chan netip.Addr, 4), cache: map[netip.Addr]*dest{},
		ttl: time.Minute, timeout: time.Second, failTTL: 5 * time.Second, now: time.Now,
		lockTX: func() func() { return func() {} }}
}

// TestResolverBoundsHostileInput: datagrams to unresolved destinations are
// queued only up to the per-destination and total bounds, the cache and
// the request channel are bounded, and every datagram over a bound is a
// counted drop — a flood of spoofed sources costs bounded memory and never
// blocks.
func TestResolverBoundsHostileInput(t *testing.T) {
	r := newTestResolver()
	now := time.Unix(1000, 0)
	dst := netip.MustParseAddrPort("10.0.0.9:4433")
	for range maxQueuedPerDest + 10 {
		if mac := r.next(dst, make([]byte, 100), now); mac != nil {
			t.Fatal("unresolved destination returned a MAC")
		}
	}
	if got := len(r.cache[dst.Addr()].queue); got != maxQueuedPerDest {
		t.Fatalf("queued %d, want the bound %d", got, maxQueuedPerDest)
	}
	if d := r.drops.Load(); d != 10 {
		t.Fatalf("drops %d, want 10", d)
	}
	if len(r.reqs) != 1 {
		t.Fatalf("%d resolution requests for one destination, want 1", len(r.reqs))
	}

	// Total queued bytes are bounded across destinations.
	r = newTestResolver()
	r.reqs = make(chan netip.Addr, 1024)
	big := make([]byte, 64<<10)
	queuedOK := 0
	for i := range 100 {
		a := netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 1, byte(i >> 8), byte(i)}), 1)
		before := r.drops.Load()
		r.next(a, big, now)
		if r.drops.Load() == before {
			queuedOK++
		}
	}
	if r.queuedBytes > maxQueuedBytes || queuedOK != maxQueuedBytes/len(big) {
		t.Fatalf("queued %d bytes in %d datagrams; bound %d", r.queuedBytes, queuedOK, maxQueuedBytes)
	}

	// A full request channel drops instead of blocking, and leaves no
	// entry behind that would never be resolved.
	r = newTestResolver()
	for i := range 10 {
		r.next(netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 2, 0, byte(i)}), 1), []byte("x"), now)
	}
	if len(r.cache) != cap(r.reqs) || r.drops.Load() != 10-uint64(cap(r.reqs)) {
		t.Fatalf("cache %d entries, drops %d with a %d-slot channel", len(r.cache), r.drops.Load(), cap(r.reqs))
	}
}

// TestResolverCachesFailureAndRefreshes: a failed destination is dropped
// without new requests until failTTL, then retried; a resolved one past its
// TTL keeps its MAC while one background refresh is requested.
func TestResolverCachesFailureAndRefreshes(t *testing.T) {
	r := newTestResolver()
	clock := time.Unix(1000, 0)
	r.now = func() time.Time { return clock }
	dst := netip.MustParseAddrPort("10.0.0.9:4433")
	r.next(dst, []byte("a"), clock)
	<-r.reqs
	r.settle(dst.Addr(), nil, netip.Addr{}, errNoNeighbour)
	if r.drops.Load() != 1 {
		t.Fatalf("queued datagram of a failed destination: drops %d, want 1", r.drops.Load())
	}
	r.next(dst, []byte("b"), clock.Add(4*time.Second))
	if len(r.reqs) != 0 || r.drops.Load() != 2 {
		t.Fatalf("within failTTL: %d requests, drops %d", len(r.reqs), r.drops.Load())
	}
	r.next(dst, []byte("c"), clock.Add(6*time.Second))
	if len(r.reqs) != 1 {
		t.Fatal("not retried after failTTL")
	}
	<-r.reqs

	mac := net.HardwareAddr{2, 0, 0, 0, 0, 1}
	var flushed []queued
	r.flush = func(_ netip.Addr, _ net.HardwareAddr, q []queued) { flushed = q }
	clock = clock.Add(6 * time.Second)
	r.settle(dst.Addr(), mac, dst.Addr(), nil)
	if len(flushed) != 1 || string(flushed[0].buf) != "c" || r.queuedBytes != 0 {
		t.Fatalf("flushed %v, queued bytes %d", flushed, r.queuedBytes)
	}
	if got := r.next(dst, []byte("d"), clock.Add(2*time.Minute)); got.String() != mac.String() {
		t.Fatalf("stale entry returned %v, want the old MAC while refreshing", got)
	}
	r.next(dst, []byte("e"), clock.Add(2*time.Minute))
	if len(r.reqs) != 1 {
		t.Fatalf("%d refresh requests, want exactly 1", len(r.reqs))
	}
}
