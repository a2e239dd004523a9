// Package memlink is an in-memory link.Link pair for tests: what one end
// writes the other reads, through a seeded, configurable impairment model
// (loss, duplication, reordering, delay, jitter, a rate limit with a
// bounded queue, and an arbitrary drop filter).
//
// Each direction has its own random source derived from Config.Seed, so with
// Delay == 0 and Jitter == 0 the sequence a reader sees depends only on the
// seed and on what was written, not on goroutine scheduling (as long as no
// reorder hold times out, see reorderHold). Delay, jitter and rate use real
// time, because end-to-end tests of the transport run on real time.
//
// Pipeline of one direction, all under the direction's mutex:
//
//  1. WriteBatch copies each datagram (the caller keeps its buffers);
//  2. misrouted (Addr is not the peer), Drop filter, Loss: discard, count;
//  3. Duplicate: a second copy follows the first;
//  4. Reorder: hold the copy back; held copies are released right after the
//     next copy that is not held, or after reorderHold if none comes;
//  5. Rate, Delay, Jitter: schedule at max(now, link busy)+size/Rate
//     +Delay+U[0,Jitter) in a min-heap served by one time.AfterFunc timer,
//     or, when that time is now, deliver at once;
//  6. delivery: a non-blocking send into the peer's buffered channel of
//     QueueLen; a full channel (or a full heap) is a tail drop.
package memlink

import (
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/flightline/flightline/transport/internal/monotime"
	"github.com/flightline/flightline/transport/link"
)

var _ link.Link = (*Link)(nil)

const (
	// DefaultQueueLen is Config.QueueLen when zero.
	DefaultQueueLen = 4096
	// reorderHold bounds how long a packet held for reordering waits for a
	// successor before it is released anyway (in order, not counted as
	// reordered). Short, so a lone final packet is not stalled for long.
	reorderHold = 2 * time.Millisecond
	// maxHeld bounds the packets held for reordering at once; when full,
	// the next packet is not held.
	maxHeld = 16
)

// Impairment describes one direction of the pair. The zero value is a
// perfect, instantaneous wire.
type Impairment struct {
	// Loss, Duplicate and Reorder are probabilities in [0,1], rolled per
	// packet (Duplicate only for packets not lost, Reorder per copy).
	Loss, Duplicate, Reorder float64
	// Delay is the base one-way delay; Jitter adds uniform [0,Jitter) on
	// top, per copy, which also reorders packets closer than Jitter.
	Delay, Jitter time.Duration
	// Rate is the wire's bandwidth in bytes/s; packets are serialised one
	// after another, so a burst queues (bounded by Config.QueueLen).
	// 0 means unlimited.
	Rate int64
	// Drop, if set, is called with each written packet; returning true
	// drops it (counted in Stats.DroppedFilter). It runs under the
	// direction's lock and must not call into the Link.
	Drop func(pkt []byte) bool
}

// Config sets up a pair.
type Config struct {
	AtoB, BtoA Impairment // impairment of what a writes to b, and b to a
	Seed       uint64     // seeds both directions' random sources
	QueueLen   int        // per direction, packets; default DefaultQueueLen
	MTU        int        // largest datagram; default link.MaxPacketSize
}

// Stats counts one Link's outgoing direction (what it wrote and what became
// of it) plus what it read.
type Stats struct {
	Sent          uint64 // datagrams accepted by WriteBatch
	Delivered     uint64 // copies put into the peer's receive queue (duplicates included)
	Received      uint64 // datagrams returned by this Link's ReadBatch
	DroppedLoss   uint64 // random loss
	DroppedFilter uint64 // Impairment.Drop returned true
	DroppedQueue  uint64 // tail drops: receive queue or delay queue full, or peer closed
	Misrouted     uint64 // Addr was not the peer's address: discarded
	Duplicated    uint64 // extra copies made
	Reordered     uint64 // copies released after a later copy
	Delayed       uint64 // copies that went through the delay queue
}

// pbuf is a pooled packet copy; the pool holds pointers so Put does not
// allocate.
type pbuf struct{ b []byte }

// Link is one end of a pair.
type Link struct {
	local, remote netip.AddrPort
	peer          *Link
	mtu           int
	pool          *sync.Pool // shared by the pair, buffers of cap mtu
	inbox         chan *pbuf // written by the peer's direction only
	closed        chan struct{}
	closeOnce     sync.Once
	received      atomic.Uint64
	out           *direction
}

var pairCount atomic.Uint32

// NewPair returns two connected Links with distinct fake addresses
// (127.0.0.1:1 and 127.0.0.1:2 for the first pair of a process; later pairs
// get other ports). Close each when done.
func NewPair(cfg Config) (a, b *Link) {
	if cfg.QueueLen <= 0 {
		cfg.QueueLen = DefaultQueueLen
	}
	if cfg.MTU <= 0 {
		cfg.MTU = link.MaxPacketSize
	}
	k := (pairCount.Add(1) - 1) % 32767
	lo := netip.AddrFrom4([4]byte{127, 0, 0, 1})
	pool := &sync.Pool{New: func() any { return &pbuf{b: make([]byte, 0, cfg.MTU)} }}
	mk := func(port uint16) *Link {
		return &Link{
			local:  netip.AddrPortFrom(lo, port),
			mtu:    cfg.MTU,
			pool:   pool,
			inbox:  make(chan *pbuf, cfg.QueueLen),
			closed: make(chan struct{}),
		}
	}
	a, b = mk(uint16(2*k+1)), mk(uint16(2*k+2))
	a.peer, b.peer = b, a
	a.remote, b.remote = b.local, a.local
	a.out = newDirection(cfg.AtoB, cfg.Seed, 1, cfg.QueueLen, b)
	b.out = newDirection(cfg.BtoA, cfg.Seed, 2, cfg.QueueLen, a)
	return a, b
}

// SetImpairment replaces the impairment of this Link's outgoing direction.
// Safe to call concurrently with everything else.
func (l *Link) SetImpairment(imp Impairment) {
	d := l.out
	d.mu.Lock()
	d.imp = imp
	d.mu.Unlock()
}

// WriteBatch copies msgs into the pair. It never blocks: what the impaired
// wire cannot take is dropped and counted. It stops at a datagram larger
// than the MTU with link.ErrTooLarge, and returns net.ErrClosed after Close.
func (l *Link) WriteBatch(msgs []link.Message) (int, error) {
	if l.isClosed() {
		return 0, net.ErrClosed
	}
	d := l.out
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return 0, net.ErrClosed
	}
	now := monotime.Now()
	for i := range msgs {
		m := &msgs[i]
		if len(m.Buf) > l.mtu {
			return i, fmt.Errorf("memlink: send %d bytes (MTU %d): %w", len(m.Buf), l.mtu, link.ErrTooLarge)
		}
		d.st.Sent++
		d.sendLocked(m, now)
	}
	return len(msgs), nil
}

// ReadBatch blocks until at least one datagram is queued, then fills msgs
// with what is immediately available. A datagram longer than cap(Buf) is
// truncated (callers size buffers with the MTU). After Close it returns
// net.ErrClosed.
func (l *Link) ReadBatch(msgs []link.Message) (int, error) {
	if len(msgs) == 0 {
		return 0, nil
	}
	if l.isClosed() {
		return 0, net.ErrClosed
	}
	var p *pbuf
	select {
	case <-l.closed:
		return 0, net.ErrClosed
	case p = <-l.inbox:
	}
	n := 0
	for {
		m := &msgs[n]
		m.Buf = m.Buf[:copy(m.Buf[:cap(m.Buf)], p.b)]
		m.Addr = l.remote
		l.pool.Put(p)
		n++
		if n == len(msgs) {
			break
		}
		select {
		case p = <-l.inbox:
			continue
		default:
		}
		break
	}
	l.received.Add(uint64(n))
	return n, nil
}

// BatchSize is link.IdealBatchSize; WriteBatch takes any length.
func (l *Link) BatchSize() int { return link.IdealBatchSize }

// Caps reports datapath "mem".
func (l *Link) Caps() link.Caps { return link.Caps{Datapath: "mem", Queues: 1} }

// LocalAddr is this end's fake address; the peer's ReadBatch reports it.
func (l *Link) LocalAddr() netip.AddrPort { return l.local }

// Close stops this end: blocked and later ReadBatch/WriteBatch calls return
// net.ErrClosed, the outgoing direction's timers are stopped and its queued
// packets discarded. Packets the peer sends afterwards are discarded. The
// peer stays open. Closing twice returns nil.
func (l *Link) Close() error {
	l.closeOnce.Do(func() {
		close(l.closed)
		l.out.close()
	})
	return nil
}

// Stats returns a snapshot of this end's counters.
func (l *Link) Stats() Stats {
	d := l.out
	d.mu.Lock()
	s := d.st
	d.mu.Unlock()
	s.Received = l.received.Load()
	return s
}

func (l *Link) isClosed() bool {
	select {
	case <-l.closed:
		return true
	default:
		return false
	}
}

// direction is one way of the pair. Everything in it is guarded by mu,
// including the counters and the random source, which is what makes the
// outcome depend only on the seed and the packet sequence.
type direction struct {
	mu     sync.Mutex
	imp    Impairment
	rng    *rand.Rand
	qlen   int
	dst    *Link
	closed bool
	st     Stats

	held         []*pbuf       // reorder hold, in arrival order
	holdDeadline monotime.Time // release held packets by then
	holdTimer    *time.Timer

	heap      delayHeap
	seq       uint64        // tie-break so equal times stay FIFO
	busyUntil monotime.Time // when the rate-limited wire is free
	timer     *time.Timer   // fires for heap[0]
	timerAt   monotime.Time // when timer is armed for; 0 = not armed
}

func newDirection(imp Impairment, seed, stream uint64, qlen int, dst *Link) *direction {
	return &direction{imp: imp, rng: rand.New(rand.NewPCG(seed, stream)), qlen: qlen, dst: dst}
}

func (d *direction) roll(p float64) bool { return p > 0 && d.rng.Float64() < p }

// sendLocked runs steps 2-4 of the pipeline for one written datagram.
func (d *direction) sendLocked(m *link.Message, now monotime.Time) {
	switch {
	case m.Addr != d.dst.local:
		d.st.Misrouted++
		return
	case d.imp.Drop != nil && d.imp.Drop(m.Buf):
		d.st.DroppedFilter++
		return
	case d.roll(d.imp.Loss):
		d.st.DroppedLoss++
		return
	}
	copies := 1
	if d.roll(d.imp.Duplicate) {
		copies = 2
		d.st.Duplicated++
	}
	for c := 0; c < copies; c++ {
		p := d.dst.pool.Get().(*pbuf)
		p.b = append(p.b[:0], m.Buf...)
		if len(d.held) < maxHeld && d.roll(d.imp.Reorder) {
			if len(d.held) == 0 {
				d.holdDeadline = now.Add(reorderHold)
				d.armHoldLocked(reorderHold)
			}
			d.held = append(d.held, p)
			continue
		}
		d.scheduleLocked(p, now)
		for i, h := range d.held {
			d.scheduleLocked(h, now)
			d.st.Reordered++
			d.held[i] = nil
		}
		d.held = d.held[:0]
	}
}

func (d *direction) armHoldLocked(after time.Duration) {
	if d.holdTimer == nil {
		d.holdTimer = time.AfterFunc(after, d.holdExpired)
	} else {
		d.holdTimer.Reset(after)
	}
}

// holdExpired releases held packets whose successor did not come in time.
func (d *direction) holdExpired() {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed || len(d.held) == 0 {
		return
	}
	now := monotime.Now()
	if now.Before(d.holdDeadline) { // re-held since this timer was set
		d.armHoldLocked(d.holdDeadline.Sub(now))
		return
	}
	for i, h := range d.held {
		d.scheduleLocked(h, now)
		d.held[i] = nil
	}
	d.held = d.held[:0]
}

// scheduleLocked runs step 5: deliver now or put in the delay heap.
func (d *direction) scheduleLocked(p *pbuf, now monotime.Time) {
	at := now
	if r := d.imp.Rate; r > 0 {
		start := max(now, d.busyUntil)
		d.busyUntil = start + monotime.Time(int64(len(p.b))*int64(time.Second)/r)
		at = d.busyUntil
	}
	if d.imp.Delay > 0 {
		at = at.Add(d.imp.Delay)
	}
	if d.imp.Jitter > 0 {
		at = at.Add(time.Duration(d.rng.Int64N(int64(d.imp.Jitter))))
	}
	if at <= now {
		d.deliverLocked(p)
		return
	}
	if len(d.heap) >= d.qlen {
		d.st.DroppedQueue++
		d.dst.pool.Put(p)
		return
	}
	d.st.Delayed++
	d.seq++
	d.heap.push(delayed{p: p, at: at, seq: d.seq})
	if d.timerAt == 0 || at < d.timerAt {
		d.armLocked(at, now)
	}
}

func (d *direction) armLocked(at, now monotime.Time) {
	d.timerAt = at
	if d.timer == nil {
		d.timer = time.AfterFunc(at.Sub(now), d.deliverDue)
	} else {
		d.timer.Reset(at.Sub(now))
	}
}

// deliverDue is the delay timer's callback: deliver every packet that is
// due and re-arm for the next one.
func (d *direction) deliverDue() {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return
	}
	now := monotime.Now()
	for len(d.heap) > 0 && d.heap[0].at <= now {
		d.deliverLocked(d.heap.pop().p)
	}
	d.timerAt = 0
	if len(d.heap) > 0 {
		d.armLocked(d.heap[0].at, now)
	}
}

// deliverLocked runs step 6.
func (d *direction) deliverLocked(p *pbuf) {
	if d.dst.isClosed() {
		d.st.DroppedQueue++
		d.dst.pool.Put(p)
		return
	}
	select {
	case d.dst.inbox <- p:
		d.st.Delivered++
	default:
		d.st.DroppedQueue++
		d.dst.pool.Put(p)
	}
}

// close stops the timers and drops what is queued or held. A timer callback
// already running finds closed set and returns.
func (d *direction) close() {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.closed = true
	if d.timer != nil {
		d.timer.Stop()
	}
	if d.holdTimer != nil {
		d.holdTimer.Stop()
	}
	for _, h := range d.held {
		d.dst.pool.Put(h)
	}
	d.held = nil
	for len(d.heap) > 0 {
		d.dst.pool.Put(d.heap.pop().p)
	}
}
