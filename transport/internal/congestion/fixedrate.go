package congestion

import (
	"math"
	"sync/atomic"

	"github.com/flightline/flightline/transport/internal/monotime"
)

// fixedRateMinPackets is the window floor of the fixed-rate controller: enough
// to keep a paced sender busy when srtt is tiny.
const fixedRateMinPackets = 16

// fixedRate sends at a constant rate and ignores loss. It exists for
// benchmarks and for measuring a datapath's capacity without congestion
// control in the way; never use it on a shared network.
type fixedRate struct {
	rate      float64
	minWindow int64
	maxWindow int64
	window    atomic.Int64
}

// NewFixedRate returns a controller that paces at rate bytes/s (<= 0 or NaN
// means "do not pace") with window max(rate*2*srtt, 16 packets), capped at
// cfg.MaxWindow. srtt is DefaultInitialRTT until the first OnAck.
func NewFixedRate(rate float64, cfg Config) Controller {
	cfg = cfg.withDefaults()
	if !(rate > 0) || math.IsInf(rate, 0) {
		rate = 0
	}
	f := &fixedRate{
		rate:      rate,
		minWindow: fixedRateMinPackets * int64(cfg.MaxDatagramSize),
		maxWindow: cfg.MaxWindow,
	}
	f.update(DefaultInitialRTT.Seconds())
	return f
}

func (f *fixedRate) update(srttSeconds float64) {
	w := f.minWindow
	if bdp := f.rate * 2 * srttSeconds; bdp > float64(w) {
		w = int64(min(bdp, float64(f.maxWindow)))
	}
	f.window.Store(max(min(w, f.maxWindow), 1))
}

func (f *fixedRate) Name() string                     { return "fixed" }
func (f *fixedRate) OnSent(monotime.Time, int, int64) {}

func (f *fixedRate) OnAck(ev *AckEvent) {
	if ev.RTT != nil {
		f.update(ev.RTT.Smoothed().Seconds())
	}
}

func (f *fixedRate) OnLoss(*LossEvent)                 {}
func (f *fixedRate) OnRTO(monotime.Time)               {}
func (f *fixedRate) OnAppLimited(monotime.Time, int64) {}
func (f *fixedRate) Window() int64                     { return f.window.Load() }
func (f *fixedRate) PacingRate() float64               { return f.rate }
func (f *fixedRate) InSlowStart() bool                 { return false }
