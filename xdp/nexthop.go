package xdp

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Resolution tunables; fields of resolver so tests can shorten them.
const (
	// nextHopTTL bounds how long a resolved MAC is used before it is
	// re-resolved in the background (the old one stays in use meanwhile).
	// Route and neighbour changes invalidate earlier, through rtnetlink
	// notifications.
	nextHopTTL = 30 * time.Second
	// resolveTimeout is how long a destination may stay unresolved
	// (ARP/ND unanswered) before its queued datagrams are dropped.
	resolveTimeout = 3 * time.Second
	// failTTL caches a failed resolution: datagrams to the destination are
	// dropped (counted) without asking the kernel again until it passes.
	failTTL = 5 * time.Second
	// maxQueuedPerDest datagrams wait for a destination being resolved
	// (the kernel's unres_qlen is ~100); more are dropped (counted). A
	// connection's first flight is far smaller: it starts with a handshake.
	maxQueuedPerDest = 256
	// maxQueuedBytes bounds the payload bytes queued over all destinations.
	maxQueuedBytes = 4 << 20
	// maxDests bounds the cache, so spoofed sources cannot grow it without
	// limit; when full, expired entries are evicted, and if none are, the
	// datagram to the new destination is dropped (counted).
	maxDests = 4096
	// recheckEvery re-reads the neighbour entries still being resolved, in
	// case a notification was lost (netlink multicast may drop on overrun).
	recheckEvery = 20 * time.Millisecond
)

var (
	// errNoNeighbour: ARP/ND got no answer for the next hop in time.
	errNoNeighbour = errors.New("next hop did not answer ARP/ND")
	// errOtherInterface: the kernel routes the destination out of an
	// interface other than the AF_XDP one.
	errOtherInterface = errors.New("routed through another interface")
)

type destState uint8

const (
	destResolving destState = iota
	destResolved
	destFailed
)

// queued is a datagram waiting for its destination's MAC.
type queued struct {
	buf  []byte
	port uint16
}

// dest is the cache entry of one destination address. Guarded by
// resolver.mu.
type dest struct {
	state      destState
	mac        net.HardwareAddr // resolved (also while refreshing)
	via        netip.Addr       // next hop: the gateway, or the destination on-link
	until      time.Time        // resolved: refresh after; failed: retry after
	refreshing bool             // a background re-resolution is requested
	err        error            // why it failed
	queue      []queued
}

// resolver maps destination addresses to next-hop MAC addresses for the
// TX path without ever blocking it.
//
// WriteBatch calls next under a queue's TX lock: a cache hit returns the MAC; a miss
// queues the datagram (bounded) and hands the destination to the resolver
// goroutine over a channel. That goroutine alone does netlink I/O: it asks
// the kernel's FIB for the route (RTM_GETROUTE with our source address, so
// policy routing applies), reads or triggers the next hop's neighbour entry,
// and settles the entry: resolved (queued datagrams are sent) or failed
// (they are dropped, counted, and the failure is cached for failTTL).
// Another goroutine listens to rtnetlink notifications: a route change
// expires every resolved entry, a neighbour change updates or expires the
// entries using that next hop. No lock is held across netlink I/O.
//
// Lock order: the TX queue locks (ascending; WriteBatch holds one at a
// time), then resolver.mu.
type resolver struct {
	ifindex int
	src     netip.Addr
	req     *rtnl // the resolver goroutine's request socket
	ev      *rtnl // notifications: the event goroutine's
	wakeFD  int   // eventfd that stops the event goroutine
	// flush sends a settled destination's queued datagrams; called by the
	// resolver goroutine with every TX queue locked (see settle).
	flush func(dst netip.Addr, mac net.HardwareAddr, q []queued)
	// lockTX locks every TX queue and returns the unlock.
	lockTX func() (unlock func())

	reqs   chan netip.Addr
	events chan neighEvent
	done   chan struct{}
	wg     sync.WaitGroup

	mu    sync.Mutex
	cache map[netip.Addr]*dest

	queuedBytes int // payload bytes in all queues; guarded by mu

	drops       atomic.Uint64 // datagrams dropped: unresolved, queue full, cache full
	resolutions atomic.Uint64 // resolutions started (route lookups)

	ttl, timeout, failTTL time.Duration
	now                   func() time.Time
}

// neighEvent is a notification: a neighbour change on our interface, or
// any route change (route true).
type neighEvent struct {
	route bool
	n     neighbour
}

// newResolver opens the netlink sockets; it must run on a thread in the
// interface's namespace. start launches the goroutines.
func newResolver(ifindex int, src netip.Addr) (_ *resolver, err error) {
	r := &resolver{ifindex: ifindex, src: src, wakeFD: -1,
		reqs: make(chan netip.Addr, 256), events: make(chan neighEvent, 256), done: make(chan struct{}),
		cache: map[netip.Addr]*dest{}, ttl: nextHopTTL, timeout: resolveTimeout, failTTL: failTTL, now: time.Now}
	var undo cleanup
	defer func() {
		if err != nil {
			undo.run()
		}
	}()
	if r.req, err = openRTNL(0); err != nil {
		return nil, err
	}
	undo.push(r.req.close)
	groups := uint32(unix.RTMGRP_NEIGH | unix.RTMGRP_IPV4_ROUTE | unix.RTMGRP_IPV6_ROUTE | unix.RTMGRP_IPV4_RULE)
	if r.ev, err = openRTNL(groups); err != nil {
		return nil, err
	}
	undo.push(r.ev.close)
	if r.wakeFD, err = unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK); err != nil {
		return nil, fmt.Errorf("create eventfd: %w", err)
	}
	undo = nil
	return r, nil
}

func (r *resolver) start(lockTX func() func(), flush func(netip.Addr, net.HardwareAddr, []queued)) {
	r.lockTX, r.flush = lockTX, flush
	r.wg.Add(2)
	go r.run()
	go r.listen()
}

// stop ends both goroutines and closes the sockets. The caller must not
// hold a TX lock (the resolver goroutine may be waiting for it).
func (r *resolver) stop() error {
	close(r.done)
	one := uint64(1)
	unix.Write(r.wakeFD, unsafe.Slice((*byte)(unsafe.Pointer(&one)), 8))
	r.wg.Wait()
	return errors.Join(r.req.close(), r.ev.close(), unix.Close(r.wakeFD))
}

// next returns the MAC to send a datagram for dst to, or nil when it is not
// known yet; then buf has been copied into the destination's queue (sent
// once resolved) or dropped and counted. It never blocks. The caller holds
// the TX lock of dst's queue.
func (r *resolver) next(dst netip.AddrPort, buf []byte, now time.Time) net.HardwareAddr {
	addr := dst.Addr()
	r.mu.Lock()
	defer r.mu.Unlock()
	d := r.cache[addr]
	if d != nil && d.state == destResolved {
		if now.After(d.until) && !d.refreshing && r.request(addr) {
			d.refreshing = true
		}
		return d.mac
	}
	if d != nil && d.state == destFailed && now.Before(d.until) {
		r.drops.Add(1)
		return nil
	}
	if d == nil || d.state == destFailed {
		if d == nil && len(r.cache) >= maxDests && !r.evictLocked(now) {
			r.drops.Add(1)
			return nil
		}
		if !r.request(addr) {
			r.drops.Add(1)
			return nil
		}
		d = &dest{state: destResolving}
		r.cache[addr] = d
	}
	if len(d.queue) >= maxQueuedPerDest || r.queuedBytes+len(buf) > maxQueuedBytes {
		r.drops.Add(1)
		return nil
	}
	d.queue = append(d.queue, queued{buf: append([]byte(nil), buf...), port: dst.Port()})
	r.queuedBytes += len(buf)
	return nil
}

// prefetch starts resolving addr without a datagram to send, so the first
// datagrams find its MAC in the cache. It does nothing when addr is cached
// or the request channel is full.
func (r *resolver) prefetch(addr netip.Addr) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, ok := r.cache[addr]; ok || len(r.cache) >= maxDests {
		return
	}
	if r.request(addr) {
		r.cache[addr] = &dest{state: destResolving}
	}
}

// request hands addr to the resolver goroutine without blocking.
func (r *resolver) request(addr netip.Addr) bool {
	select {
	case r.reqs <- addr:
		return true
	default:
		return false
	}
}

// evictLocked drops expired failures and resolved entries past their TTL
// and reports whether room was made.
func (r *resolver) evictLocked(now time.Time) bool {
	for a, d := range r.cache {
		if d.state != destResolving && now.After(d.until) {
			delete(r.cache, a)
		}
	}
	return len(r.cache) < maxDests
}

// run is the resolver goroutine: the only one doing netlink requests.
func (r *resolver) run() {
	defer r.wg.Done()
	waiting := map[netip.Addr]time.Time{} // destinations waiting for their next hop's entry, with deadlines
	vias := map[netip.Addr]netip.Addr{}
	// The recheck timer runs only while something is being resolved, so
	// an idle link does not wake up.
	tick := time.NewTicker(recheckEvery)
	tick.Stop()
	ticking := false
	defer tick.Stop()
	for {
		if len(waiting) > 0 && !ticking {
			tick.Reset(recheckEvery)
			ticking = true
		} else if len(waiting) == 0 && ticking {
			tick.Stop()
			ticking = false
		}
		select {
		case <-r.done:
			return
		case addr := <-r.reqs:
			r.resolve(addr, waiting, vias)
		case ev := <-r.events:
			r.onEvent(ev, waiting, vias)
		case <-tick.C:
			if len(waiting) == 0 {
				continue
			}
			now := r.now()
			checked := map[netip.Addr]neighbour{}
			for addr, deadline := range waiting {
				via := vias[addr]
				n, ok := checked[via]
				if !ok {
					n, _ = r.req.neighbour(r.ifindex, via)
					checked[via] = n
				}
				switch {
				case n.usable():
					r.settle(addr, n.mac, via, nil)
				case now.After(deadline):
					r.settle(addr, nil, via, fmt.Errorf("resolve %v via %v: %w", addr, via, errNoNeighbour))
				default:
					continue
				}
				delete(waiting, addr)
				delete(vias, addr)
			}
		}
	}
}

// resolve looks up addr's route and next hop. It settles the entry at once
// when the neighbour entry is usable or the route is unusable; otherwise it
// asks the kernel to resolve the next hop and adds addr to waiting.
func (r *resolver) resolve(addr netip.Addr, waiting map[netip.Addr]time.Time, vias map[netip.Addr]netip.Addr) {
	if _, ok := waiting[addr]; ok {
		return
	}
	r.resolutions.Add(1)
	rt, err := r.req.route(addr, r.src)
	if err == nil && rt.typ != unix.RTN_UNICAST {
		err = fmt.Errorf("route to %v: type %d is not unicast", addr, rt.typ)
	}
	if err == nil && rt.oif != r.ifindex {
		err = fmt.Errorf("route to %v: %w (ifindex %d, ours %d)", addr, errOtherInterface, rt.oif, r.ifindex)
	}
	if err != nil {
		r.settle(addr, nil, netip.Addr{}, err)
		return
	}
	via := addr
	if rt.gateway.IsValid() {
		via = rt.gateway.Unmap()
	}
	n, err := r.req.neighbour(r.ifindex, via)
	if err == nil && n.usable() {
		r.settle(addr, n.mac, via, nil)
		return
	}
	if err == nil {
		err = r.req.trigger(r.ifindex, via)
	}
	if err != nil {
		r.settle(addr, nil, via, err)
		return
	}
	waiting[addr] = r.now().Add(r.timeout)
	vias[addr] = via
}

// onEvent applies a notification: a usable neighbour settles the
// destinations waiting for it and updates resolved entries using it; a
// neighbour gone bad, or any route change, expires the entries it affects so
// their next use re-resolves them (the old MAC stays in use meanwhile).
func (r *resolver) onEvent(ev neighEvent, waiting map[netip.Addr]time.Time, vias map[netip.Addr]netip.Addr) {
	if !ev.route && ev.n.ifindex != r.ifindex {
		return
	}
	if !ev.route && ev.n.usable() {
		for addr := range waiting {
			if vias[addr] == ev.n.ip {
				r.settle(addr, ev.n.mac, ev.n.ip, nil)
				delete(waiting, addr)
				delete(vias, addr)
			}
		}
	}
	now := r.now()
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, d := range r.cache {
		if d.state != destResolved || (!ev.route && d.via != ev.n.ip) {
			continue
		}
		if !ev.route && ev.n.usable() {
			d.mac = ev.n.mac
			continue
		}
		d.until = now
	}
}

// settle ends a resolution: with a MAC the entry is resolved and its queued
// datagrams go out; with an error it fails (cached for failTTL) and they are
// dropped. It takes the TX locks before mu (the lock order) so queued
// datagrams leave before any the TX path sends with the new MAC. Settling
// is rare (once per destination), so it may lock every queue.
func (r *resolver) settle(addr netip.Addr, mac net.HardwareAddr, via netip.Addr, err error) {
	defer r.lockTX()()
	r.mu.Lock()
	d := r.cache[addr]
	if d == nil {
		r.mu.Unlock()
		return
	}
	now := r.now()
	q := d.queue
	d.queue, d.refreshing = nil, false
	for _, m := range q {
		r.queuedBytes -= len(m.buf)
	}
	if err != nil {
		d.state, d.until, d.err, d.mac = destFailed, now.Add(r.failTTL), err, nil
		r.drops.Add(uint64(len(q)))
		r.mu.Unlock()
		return
	}
	d.state, d.mac, d.via, d.until, d.err = destResolved, mac, via, now.Add(r.ttl), nil
	r.mu.Unlock()
	if len(q) > 0 {
		r.flush(addr, mac, q)
	}
}

// listen is the event goroutine: it forwards rtnetlink notifications to
// run. When the socket overran (ENOBUFS: notifications were lost) it sends
// a route event, which expires every entry.
func (r *resolver) listen() {
	defer r.wg.Done()
	pfd := []unix.PollFd{{Fd: int32(r.ev.fd), Events: unix.POLLIN}, {Fd: int32(r.wakeFD), Events: unix.POLLIN}}
	for {
		if _, err := unix.Poll(pfd, -1); err != nil && !errors.Is(err, unix.EINTR) {
			return
		}
		if pfd[1].Revents != 0 {
			return
		}
		nr, _, err := unix.Recvfrom(r.ev.fd, r.ev.buf, unix.MSG_DONTWAIT)
		var evs []neighEvent
		switch {
		case errors.Is(err, unix.ENOBUFS):
			evs = append(evs, neighEvent{route: true})
		case err != nil:
			continue
		default:
			msgs, _ := syscall.ParseNetlinkMessage(r.ev.buf[:nr])
			for _, m := range msgs {
				switch m.Header.Type {
				case unix.RTM_NEWROUTE, unix.RTM_DELROUTE, unix.RTM_NEWRULE, unix.RTM_DELRULE:
					evs = append(evs, neighEvent{route: true})
				default:
					if n, ok := parseNeighbour(m); ok {
						evs = append(evs, neighEvent{n: n})
					}
				}
			}
		}
		for _, ev := range evs {
			select {
			case r.events <- ev:
			case <-r.done:
				return
			}
		}
	}
}

// state reports addr's cache state, for tests and diagnostics.
func (r *resolver) state(addr netip.Addr) (destState, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	d, ok := r.cache[addr]
	if !ok {
		return 0, false
	}
	return d.state, true
}
