package xdp

import (
	"fmt"

	"github.com/flightline/flightline/bpf"
	"github.com/flightline/flightline/transport/link"
)

// XSKStats are a socket's XDP_STATISTICS counters (struct xdp_statistics).
type XSKStats struct {
	RxDropped       uint64 // frames dropped by the kernel, e.g. larger than FrameSize-256
	RxInvalidDescs  uint64
	TxInvalidDescs  uint64 // bad TX descriptors, e.g. longer than the MTU
	RxRingFull      uint64 // RX ring full: the reader is too slow
	RxFillRingEmpty uint64 // no fill frame available: the reader refills too slowly
	TxRingEmpty     uint64
}

// QueueStats are the statistics of one served receive queue.
type QueueStats struct {
	Queue     int
	RxPackets uint64 // datagrams delivered by ReadBatch from this queue
	TxPackets uint64 // frames submitted for transmit on this queue's socket
	XSK       XSKStats
	// Drops in userspace, by reason.
	DropBadHeader uint64 // not eth/IP/UDP, truncated, bad version/IHL/lengths
	DropNotOurs   uint64 // UDP to another address or port
	DropOversize  uint64 // payload larger than the caller's buffer
	// Transmit backpressure: WriteBatch found no free TX frame and waited
	// (TxFullWaits), gave up after the bounded wait with the transient
	// ErrTxFull (TxFullErrors), or a kick left frames in the TX ring after
	// the kernel kept refusing them (KickStalls; a later kick sends them).
	TxFullWaits, TxFullErrors, KickStalls uint64
	// Ring occupancy at the time of the snapshot. FillQueued counts frames
	// the kernel has not yet published as consumed (it publishes lazily,
	// so it may over-count); FillLowWater is the fewest seen on the fill
	// ring after a refill since Listen. RxQueued is received frames not yet
	// read; TxInFlight is TX frames in the TX or completion ring. FillSize is
	// the number of receive frames (the most the fill ring ever holds).
	FillSize, FillQueued, FillLowWater uint32
	RxQueued                           uint32
	TxFrames, TxInFlight               uint32
}

// Stats is a snapshot of the link's counters.
type Stats struct {
	Interface string
	Queues    []QueueStats // one per served queue, in queue order
	// Program holds the XDP program's counters for every queue of the
	// device, served or not.
	Program []bpf.QueueCounters
	// ProgramAttached is false after the program was detached.
	ProgramAttached bool
	// StackRx counts datagrams that reached the reserving UDP socket
	// through the kernel stack instead of AF_XDP (delivered anyway).
	StackRx uint64
	// StackOversize counts stack datagrams larger than the caller's buffer.
	StackOversize uint64
	// NeighbourDrops counts datagrams not sent because their next hop's
	// MAC address could not be resolved.
	NeighbourDrops uint64
}

// Stats returns a snapshot of the link's counters. After Close it returns
// the zero Stats with only Interface set.
func (l *Link) Stats() Stats {
	l.stateMu.Lock()
	defer l.stateMu.Unlock()
	st := Stats{Interface: l.cfg.Interface}
	if l.closed.Load() {
		return st
	}
	st.ProgramAttached = l.prog.Attached()
	st.StackRx = l.stackRx.Load()
	st.StackOversize = l.stackBig.Load()
	st.NeighbourDrops = l.nh.drops.Load()
	st.Program, _ = l.prog.Counters()
	for q, s := range l.socks {
		c := &l.counters[q]
		qs := QueueStats{Queue: q, RxPackets: c.rx.Load(), TxPackets: c.tx.Load(),
			DropBadHeader: c.drops[dropBadHeader].Load(), DropNotOurs: c.drops[dropNotOurs].Load(),
			DropOversize: c.drops[dropOversize].Load(),
			TxFullWaits:  c.txFullWaits.Load(), TxFullErrors: c.txFullErrors.Load(), KickStalls: s.kickStalls.Load(),
			FillSize: s.fill.Size() / 2, FillQueued: s.fill.Queued(), FillLowWater: s.fillLow.Load(),
			RxQueued: s.rx.Queued(), TxFrames: s.umem.txFrames, TxInFlight: s.umem.inFlight.Load()}
		qs.XSK, _ = s.xskStats()
		st.Queues = append(st.Queues, qs)
	}
	return st
}

// Counters sums the queues' counters into the datapath-neutral form that
// link.Caps (and so transport.Stats.Link) reports.
func (s Stats) Counters() link.Counters {
	var c link.Counters
	for _, q := range s.Queues {
		c.RxDropped += q.XSK.RxDropped
		c.RxRingFull += q.XSK.RxRingFull
		c.RxFillRingEmpty += q.XSK.RxFillRingEmpty
		c.RxInvalidDescs += q.XSK.RxInvalidDescs
		c.TxInvalidDescs += q.XSK.TxInvalidDescs
		c.TxRingEmpty += q.XSK.TxRingEmpty
		c.TxFullWaits += q.TxFullWaits
		c.TxFullErrors += q.TxFullErrors
		c.FillSize += q.FillSize
		c.FillQueued += q.FillQueued
		c.FillLowWater += q.FillLowWater
		c.TxFrames += q.TxFrames
		c.TxInFlight += q.TxInFlight
	}
	c.NeighbourDrops = s.NeighbourDrops
	return c
}

// Hint kinds returned by Diagnose.
const (
	HintWrongQueue    = "wrong queue"
	HintNoProgram     = "no program"
	HintOversizeFrame = "oversize frame"
	HintFillStarved   = "fill ring starved"
)

// Hint is one diagnosis: a stable Kind and a sentence for an operator.
type Hint struct {
	Kind   string
	Detail string
}

func (h Hint) String() string { return h.Kind + ": " + h.Detail }

// Diagnose explains the silent failures of AF_XDP that only counters show
// (docs/afxdp.md, "error table"): frames matched on a queue with no socket,
// a program that matches nothing while the stack gets our datagrams, and
// frames too large for the UMEM chunk. It returns nil when nothing looks
// wrong.
func (s Stats) Diagnose() []Hint {
	var hints []Hint
	served := map[int]bool{}
	for _, q := range s.Queues {
		served[q.Queue] = true
	}
	var matched uint64
	for _, p := range s.Program {
		matched += p.Matched
		if p.Matched > 0 && !served[p.Queue] {
			hints = append(hints, Hint{HintWrongQueue, fmt.Sprintf(
				"the XDP program matched %d frames on rx queue %d, which has no AF_XDP socket; they went to the kernel stack. Serve all queues (Config.Queues=0) or use a single-queue device",
				p.Matched, p.Queue)})
		}
	}
	if !s.ProgramAttached {
		hints = append(hints, Hint{HintNoProgram, "the XDP program is not attached to " + s.Interface + "; datagrams go through the kernel stack"})
	} else if matched == 0 && s.StackRx > 0 {
		hints = append(hints, Hint{HintNoProgram, fmt.Sprintf(
			"the XDP program matched 0 frames while the kernel stack delivered %d datagrams to our port: is another XDP program attached, or does traffic arrive on another interface?",
			s.StackRx)})
	}
	var kdrop, udrop, starve uint64
	for _, q := range s.Queues {
		kdrop += q.XSK.RxDropped
		udrop += q.DropOversize
		starve += q.XSK.RxFillRingEmpty
	}
	if kdrop > 0 {
		hints = append(hints, Hint{HintOversizeFrame, fmt.Sprintf(
			"the kernel dropped %d received frames (XDP_STATISTICS rx_dropped), usually frames larger than FrameSize-256: use FrameSize 4096 or lower the MTU", kdrop)})
	}
	if udrop > 0 || s.StackOversize > 0 {
		hints = append(hints, Hint{HintOversizeFrame, fmt.Sprintf(
			"%d datagrams were larger than the ReadBatch buffers and dropped", udrop+s.StackOversize)})
	}
	if starve > 0 {
		hints = append(hints, Hint{HintFillStarved, fmt.Sprintf(
			"%d frames found the fill ring empty: the reader is not keeping up", starve)})
	}
	return hints
}

// DiagString is a temporary diagnostic dump.
func (l *Link) DiagString() string { return fmt.Sprintf("%+v", l.Stats()) }
