package congestion

import (
	"container/heap"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/flightline/flightline/transport/internal/flight"
	"github.com/flightline/flightline/transport/internal/monotime"
)

// netsim is a deterministic, event-driven network for congestion-control
// tests: flows send through one shared drop-tail bottleneck (rate, buffer),
// with random loss before it, a fixed propagation delay per flow, and an ACK
// per delivered packet. Each flow runs the transport's real machinery — the
// flight Ledger with its delivery-rate sampler, RFC 9002 loss detection via
// Ledger.DetectLost, resends re-keyed with Refresh, an RTO, the RTT
// estimator, the Pacer and a Controller — the same calls in the same order as
// transport/conn_send.go and conn_recv.go make. Time is virtual; a seed fixes
// every random draw.
type netsim struct {
	t      *testing.T
	rate   float64 // bottleneck bytes/s
	buffer float64 // bytes queued at most
	loss   float64 // random loss probability, per data packet
	// jitter adds U[0,jitter) to each packet's delay after the bottleneck,
	// keeping FIFO order (like a busy forwarding hop): RTT noise without
	// reordering.
	jitter  time.Duration
	lastOut monotime.Time
	// ackLoss drops ACKs; the next ACK that arrives also carries the
	// packets whose ACKs were lost (ACK frames repeat ranges).
	ackLoss float64
	// tbf, when burst > 0, replaces the FIFO server by a token bucket like
	// Linux's tbf on a fast link: up to burst bytes leave at once, the
	// average is rate, and a packet that would wait longer than tbfLatency
	// is dropped. Its bursts are what make delivery-rate samples exceed
	// the rate.
	burst      float64
	tbfLatency time.Duration
	tokens     float64
	tokensAt   monotime.Time
	rng        *rand.Rand
	now        monotime.Time
	busy       monotime.Time // bottleneck busy until
	events     evHeap
	seq        uint64
	flows      []*simFlow
	maxQueue   float64
}

type simFlow struct {
	id      int
	cc      Controller
	ledger  *flight.Ledger
	pacer   *Pacer
	rtt     *RTT
	owd     time.Duration // one-way propagation delay each way
	start   monotime.Time
	stop    monotime.Time // 0: runs to the end
	appRate float64       // >0: application writes at this rate only (bytes/s)
	appSent float64

	nextPN       uint64
	largest      uint64
	haveLargest  bool
	resendQ      []flight.Resend
	arena        []byte
	lossTime     monotime.Time
	lastProgress monotime.Time
	rtoBackoff   int
	wakeAt       monotime.Time // pending wake event time (0 none)

	ackEv      AckEvent
	acked      []flight.Acked
	ranges     []flight.Range
	pendingAck []uint64 // received, ACK lost: repeated in the next ACK

	// Measurements.
	deliveredAt []deliveryMark // cumulative delivered bytes over time
	rttSum      time.Duration
	rttN        int
	rttSamples  []rttMark
	lostPackets int
	sentPackets int
	retransmits int
	trace       func(now monotime.Time, f *simFlow)
}

type deliveryMark struct {
	at        monotime.Time
	delivered uint64
}

type rttMark struct {
	at  monotime.Time
	rtt time.Duration
}

type evKind uint8

const (
	evAck evKind = iota
	evWake
)

type simEv struct {
	at   monotime.Time
	seq  uint64
	kind evKind
	flow *simFlow
	pn   uint64
}

type evHeap []simEv

func (h evHeap) Len() int { return len(h) }
func (h evHeap) Less(i, j int) bool {
	if h[i].at != h[j].at {
		return h[i].at < h[j].at
	}
	return h[i].seq < h[j].seq
}
func (h evHeap) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *evHeap) Push(x any)   { *h = append(*h, x.(simEv)) }
func (h *evHeap) Pop() any {
	old := *h
	e := old[len(old)-1]
	*h = old[:len(old)-1]
	return e
}

const simMSS = DefaultMaxDatagramSize

// simT0 is where virtual time starts: as far from zero as the transport's clock
// (monotime adds 2^62 ns), so "since the zero stamp" bugs show up here too.
var simT0 = monotime.Time(1 << 62)

func newNetsim(t *testing.T, rate, buffer, loss float64, seed uint64) *netsim {
	if raceEnabled {
		// One goroutine on virtual time: the race detector has nothing to
		// check and slows the simulations 25x. `make test` runs them
		// without -race.
		t.Skip("single-goroutine simulation: run without -race (make test does)")
	}
	return &netsim{t: t, rate: rate, buffer: buffer, loss: loss, rng: rand.New(rand.NewPCG(seed, 7)), now: simT0, busy: simT0}
}

// addFlow adds a bulk flow with propagation RTT rtt starting at start.
func (n *netsim) addFlow(cc Controller, rtt time.Duration, start time.Duration) *simFlow {
	f := &simFlow{
		id: len(n.flows), cc: cc, ledger: flight.NewLedger(flight.Config{}),
		pacer: NewPacer(0), rtt: NewRTT(0), owd: rtt / 2, start: simT0.Add(start),
	}
	n.flows = append(n.flows, f)
	n.schedule(f.start, evWake, f, 0)
	return f
}

func (n *netsim) schedule(at monotime.Time, k evKind, f *simFlow, pn uint64) {
	n.seq++
	heap.Push(&n.events, simEv{at: at, seq: n.seq, kind: k, flow: f, pn: pn})
}

func (n *netsim) run(d time.Duration) {
	end := simT0.Add(d)
	for steps := 0; n.events.Len() > 0; steps++ {
		if steps > 20_000_000 {
			n.t.Fatal("simulation did not terminate")
		}
		e := heap.Pop(&n.events).(simEv)
		if e.at > end {
			break
		}
		n.now = e.at
		f := e.flow
		switch e.kind {
		case evAck:
			if n.ackLoss > 0 && n.rng.Float64() < n.ackLoss {
				f.pendingAck = append(f.pendingAck, e.pn)
				break
			}
			n.onAck(f, e.pn)
		case evWake:
			if f.wakeAt == e.at {
				f.wakeAt = 0
			}
		}
		n.onTimers(f)
		n.pump(f)
	}
	n.now = end
}

// onAck is conn_recv.go's applyAck for a one-packet ACK frame.
func (n *netsim) onAck(f *simFlow, pn uint64) {
	now := n.now
	f.ranges = append(f.ranges[:0], flight.Range{Smallest: pn, Largest: pn})
	for i := len(f.pendingAck) - 1; i >= 0; i-- { // ascending PNs: append in descending order
		if p := f.pendingAck[i]; p < pn {
			f.ranges = append(f.ranges, flight.Range{Smallest: p, Largest: p})
		}
	}
	f.pendingAck = f.pendingAck[:0]
	var rs flight.RateSample
	f.acked, rs = f.ledger.Ack(now, f.ranges, f.acked[:0])
	if !f.haveLargest || pn > f.largest {
		f.largest, f.haveLargest = pn, true
	}
	if len(f.acked) == 0 {
		return
	}
	bytes := 0
	var largestSentAt monotime.Time
	for _, a := range f.acked {
		bytes += a.Size
		largestSentAt = max(largestSentAt, a.SentAt)
		if a.PN == pn {
			f.rtt.Update(now.Sub(a.SentAt), 0, 0)
			f.rttSum += now.Sub(a.SentAt)
			f.rttN++
			if len(f.rttSamples) == 0 || now.Sub(f.rttSamples[len(f.rttSamples)-1].at) >= 10*time.Millisecond {
				f.rttSamples = append(f.rttSamples, rttMark{now, now.Sub(a.SentAt)})
			}
		}
	}
	f.ackEv = AckEvent{
		Now: now, AckedBytes: bytes, LargestSentAt: largestSentAt, RTT: f.rtt,
		InFlight: f.ledger.Flight(), Sample: rs, MarkAppLimited: f.ledger.MarkAppLimited,
	}
	f.cc.OnAck(&f.ackEv)
	f.lastProgress, f.rtoBackoff = now, 0
	f.deliveredAt = append(f.deliveredAt, deliveryMark{now, rs.TotalDelivered})
	n.detectLost(f)
	if f.trace != nil {
		f.trace(now, f)
	}
}

func (n *netsim) detectLost(f *simFlow) {
	if !f.haveLargest || f.ledger.Flight() == 0 {
		f.lossTime = 0
		return
	}
	before := len(f.resendQ)
	lossDelay := max(max(f.rtt.Smoothed(), f.rtt.Latest())*9/8, time.Millisecond)
	f.resendQ, f.arena, _, f.lossTime = f.ledger.DetectLost(flight.LossParams{
		Now: n.now, LargestAcked: f.largest, HaveLargest: true, PacketThreshold: 3,
		LossDelay: lossDelay, MaxSends: 1000,
	}, f.resendQ, f.arena, nil)
	if lost := f.resendQ[before:]; len(lost) > 0 {
		bytes := 0
		var newest monotime.Time
		for _, r := range lost {
			bytes += r.Size
			newest = max(newest, r.SentAt)
		}
		f.lostPackets += len(lost)
		st := f.ledger.Sampler()
		f.cc.OnLoss(&LossEvent{Now: n.now, LostBytes: bytes, LostSentAt: newest, InFlight: f.ledger.Flight(),
			Packets: lost, TotalLost: st.Lost, TotalDelivered: st.Delivered})
	}
}

func (n *netsim) rto(f *simFlow) time.Duration {
	return f.rtt.RTO(200*time.Millisecond, 60*time.Second, f.rtoBackoff)
}

func (n *netsim) onTimers(f *simFlow) {
	if f.lossTime != 0 && n.now >= f.lossTime {
		n.detectLost(f)
	}
	if f.ledger.Flight() > 0 && len(f.resendQ) == 0 && n.now >= f.lastProgress.Add(n.rto(f)) {
		f.resendQ, f.arena, _ = f.ledger.TakeOldest(f.ledger.Len(), 1000, f.resendQ, f.arena, nil)
		f.cc.OnRTO(n.now)
		f.rtoBackoff++
		f.lastProgress = n.now
	}
}

// pump sends what the flow may send now and schedules its next wake.
func (n *netsim) pump(f *simFlow) {
	if n.now < f.start || (f.stop != 0 && n.now >= f.stop) {
		return
	}
	for {
		for len(f.resendQ) > 0 && !f.ledger.Tracked(f.resendQ[0].PN) {
			f.resendQ = f.resendQ[1:]
		}
		if len(f.resendQ) == 0 {
			f.resendQ, f.arena = f.resendQ[:0], f.arena[:0]
		}
		resend := len(f.resendQ) > 0
		windowOK := f.ledger.Flight()+simMSS <= f.cc.Window()
		appOK := f.appRate == 0 || f.appSent+simMSS <= f.appRate*n.now.Sub(f.start).Seconds()
		if !resend && (!windowOK || !appOK) {
			if windowOK && !appOK {
				f.ledger.MarkAppLimited()
				f.cc.OnAppLimited(n.now, f.ledger.Flight())
				next := f.start.Add(time.Duration((f.appSent + simMSS) / f.appRate * 1e9))
				n.wake(f, next)
			}
			break
		}
		rate := f.cc.PacingRate()
		if q, ok := f.cc.(Quantizer); ok {
			f.pacer.SetQuantum(q.SendQuantum())
		}
		if f.pacer.Budget(n.now, rate) < simMSS {
			n.wake(f, f.pacer.NextSendTime(n.now, simMSS, rate))
			break
		}
		f.pacer.OnSent(n.now, simMSS, rate)
		pn := f.nextPN
		f.nextPN++
		f.sentPackets++
		if resend {
			r := f.resendQ[0]
			f.resendQ = f.resendQ[1:]
			f.retransmits++
			if !f.ledger.Refresh(r.PN, pn, n.now) {
				continue
			}
		} else {
			f.ledger.Charge(simMSS)
			f.ledger.Track(flight.Sent{PN: pn, Size: simMSS, SentAt: n.now})
			f.appSent += simMSS
		}
		f.cc.OnSent(n.now, simMSS, f.ledger.Flight())
		n.transmit(f, pn)
	}
	if f.lossTime != 0 {
		n.wake(f, f.lossTime)
	}
	if f.ledger.Flight() > 0 {
		n.wake(f, f.lastProgress.Add(n.rto(f)))
	}
}

func (n *netsim) wake(f *simFlow, at monotime.Time) {
	if at <= n.now {
		at = n.now + 1
	}
	if f.wakeAt != 0 && f.wakeAt <= at && f.wakeAt > n.now {
		return
	}
	f.wakeAt = at
	n.schedule(at, evWake, f, 0)
}

// transmit puts a data packet into the bottleneck.
func (n *netsim) transmit(f *simFlow, pn uint64) {
	if n.loss > 0 && n.rng.Float64() < n.loss {
		return // random loss before the bottleneck
	}
	if n.burst > 0 {
		n.transmitTBF(f, pn)
		return
	}
	start := max(n.busy, n.now)
	queued := start.Sub(n.now).Seconds() * n.rate
	n.maxQueue = max(n.maxQueue, queued)
	if queued > n.buffer {
		return // drop-tail
	}
	n.busy = start.Add(time.Duration(simMSS / n.rate * 1e9))
	out := n.busy
	if n.jitter > 0 {
		out = max(out.Add(time.Duration(n.rng.Int64N(int64(n.jitter)))), n.lastOut)
		n.lastOut = out
	}
	n.schedule(out.Add(2*f.owd), evAck, f, pn)
}

func (n *netsim) transmitTBF(f *simFlow, pn uint64) {
	if n.tokensAt == 0 {
		n.tokens, n.tokensAt = n.burst, n.now
	}
	// The bucket state at the departure of the previous packet (FIFO).
	t := max(n.now, n.busy)
	tokens := min(n.tokens+t.Sub(n.tokensAt).Seconds()*n.rate, n.burst)
	if tokens < simMSS {
		t = t.Add(time.Duration((simMSS - tokens) / n.rate * 1e9))
		tokens = simMSS
	}
	if t.Sub(n.now) > n.tbfLatency {
		return // tbf's latency limit: dropped
	}
	n.maxQueue = max(n.maxQueue, t.Sub(n.now).Seconds()*n.rate)
	n.tokens, n.tokensAt, n.busy = tokens-simMSS, t, t
	n.schedule(t.Add(2*f.owd), evAck, f, pn)
}

// goodput is the flow's delivered bytes/s between from and to.
func (f *simFlow) goodput(from, to time.Duration) float64 {
	at := func(d time.Duration) uint64 {
		t := simT0.Add(d)
		var v uint64
		for _, m := range f.deliveredAt {
			if m.at > t {
				break
			}
			v = m.delivered
		}
		return v
	}
	return float64(at(to)-at(from)) / (to - from).Seconds()
}

// meanRTT is the mean RTT sample between from and to.
func (f *simFlow) meanRTT(from, to time.Duration) time.Duration {
	var sum time.Duration
	n := 0
	for _, m := range f.rttSamples {
		if m.at >= simT0.Add(from) && m.at <= simT0.Add(to) {
			sum += m.rtt
			n++
		}
	}
	if n == 0 {
		return 0
	}
	return sum / time.Duration(n)
}

// timeTo returns when the flow's delivery rate over a sliding window of one
// 100 ms first reached frac of rate (or -1).
func (f *simFlow) timeTo(frac, rate float64) time.Duration {
	const win = 100 * time.Millisecond
	j := 0
	for i, m := range f.deliveredAt {
		for j < i && m.at.Sub(f.deliveredAt[j].at) > win {
			j++
		}
		if m.at.Sub(f.deliveredAt[j].at) >= win/2 {
			r := float64(m.delivered-f.deliveredAt[j].delivered) / m.at.Sub(f.deliveredAt[j].at).Seconds()
			if r >= frac*rate {
				return m.at.Sub(f.start)
			}
		}
	}
	return -1
}

func jain(x ...float64) float64 {
	s, s2 := 0.0, 0.0
	for _, v := range x {
		s += v
		s2 += v * v
	}
	if s2 == 0 {
		return 0
	}
	return s * s / (float64(len(x)) * s2)
}
