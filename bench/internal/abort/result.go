package abort

import "time"

// Result is one run. Times are relative to A's abort unless they say
// otherwise; negative ones in Series lie before it.
type Result struct {
	// Release is whether flightline's abort release was on.
	Release bool `json:"release"`
	// FirstByte is when the receiver read B's first byte; FullRate when
	// B's goodput first reached Threshold × SteadyMBps. -1 when not reached
	// within Config.Post.
	FirstByte time.Duration `json:"first_byte_ns"`
	FullRate  time.Duration `json:"full_rate_ns"`
	// MinRTT and SRTT are the sender's estimates at the abort (SRTT includes
	// the bottleneck's queueing under load).
	MinRTT time.Duration `json:"min_rtt_ns"`
	SRTT   time.Duration `json:"srtt_ns"`
	// SteadyMBps is A's delivered goodput (10^6 B/s) over the end of the
	// warm-up: what "full rate" means.
	SteadyMBps float64 `json:"steady_MBps"`
	// Stall is the time from the loss event to the abort; StrandedBytes
	// and StrandedCwnd are the sender's flight size (all of it A's lost
	// packets) and congestion window just before the abort.
	Stall         time.Duration `json:"stall_ns"`
	StrandedBytes int64         `json:"stranded_bytes"`
	StrandedCwnd  int64         `json:"stranded_cwnd"`
	// Series is the sender's state and both streams' goodput, one point per
	// millisecond, from Config.Lead before the loss event to the end.
	Series []Point `json:"series"`
	Info   Info    `json:"info"`
}

// Point is one sample of the sender.
type Point struct {
	T      time.Duration `json:"t_ns"`   // relative to the abort
	Flight int64         `json:"flight"` // bytes in flight
	Cwnd   int64         `json:"cwnd"`   // congestion window, bytes
	// SRTT is the sender's smoothed RTT: the bottleneck's queue shows here.
	SRTT time.Duration `json:"srtt_ns"`
	// GoodputMBps is B's delivered goodput over the trailing Info.Smooth
	// window ending at T; AGoodputMBps the same for A.
	GoodputMBps  float64 `json:"goodput_MBps"`
	AGoodputMBps float64 `json:"a_goodput_MBps"`
}

// Info describes how the run went: the setup and the sender's counters at
// the end.
type Info struct {
	Datapath   string        `json:"datapath"`
	Controller string        `json:"controller"`
	Suite      string        `json:"suite"`
	Delay      time.Duration `json:"delay_ns"`  // added round trip
	RateBits   int64         `json:"rate_bits"` // A→B bottleneck, bit/s
	Smooth     time.Duration `json:"smooth_ns"` // goodput window
	Threshold  float64       `json:"threshold"`

	// ABytes and BBytes are the payload bytes the receiver read and
	// verified on each stream.
	ABytes int64 `json:"a_bytes"`
	BBytes int64 `json:"b_bytes"`

	PacketsLost          uint64 `json:"packets_lost"`
	PacketsRetransmitted uint64 `json:"packets_retransmitted"`
	ResendsSkipped       uint64 `json:"resends_skipped"`
	TailLossProbes       uint64 `json:"tail_loss_probes"`
	RTOs                 uint64 `json:"rtos"`
	AbortReleasedBytes   uint64 `json:"abort_released_bytes"`
	FlightUnderflows     uint64 `json:"flight_underflows"`
	// HopLost counts A→B frames the loss event dropped, RateDropped those
	// the bottleneck's queue dropped, HopDropped those the userspace delay
	// hop could not forward (must stay 0).
	HopLost     uint64 `json:"hop_lost"`
	RateDropped uint64 `json:"rate_dropped"`
	HopDropped  uint64 `json:"hop_dropped"`
}
