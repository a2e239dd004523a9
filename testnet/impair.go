package testnet

import (
	"errors"
	"fmt"
	"math"
	"time"
)

// Impairment is what one direction of a network does to frames. The zero
// value passes everything unchanged.
type Impairment struct {
	Loss      float64       // probability a packet is dropped, [0,1] (XDP in M, kernel random, not seeded)
	Rate      int64         // bits per second of Ethernet frames, 0 = unlimited (tbf in M; userspace without tbf)
	Delay     time.Duration // one-way added delay (userspace hop)
	Jitter    time.Duration // uniform extra delay in [0,Jitter), which reorders (userspace hop)
	Reorder   float64       // probability a packet is held back behind the next one, [0,1] (userspace hop)
	Duplicate float64       // probability a packet is sent twice, [0,1] (userspace hop)
	Seed      uint64        // seeds the hop's decisions (jitter, reorder, duplicate) for this direction
}

// maxDelay bounds Delay+Jitter so a typo cannot park frames for hours.
const maxDelay = 10 * time.Second

func (imp Impairment) isZero() bool {
	imp.Seed = 0
	return imp == Impairment{}
}

func (imp Impairment) validate() error {
	for _, p := range []struct {
		name string
		v    float64
	}{{"Loss", imp.Loss}, {"Reorder", imp.Reorder}, {"Duplicate", imp.Duplicate}} {
		if math.IsNaN(p.v) || p.v < 0 || p.v > 1 {
			return fmt.Errorf("%s %v outside [0,1]", p.name, p.v)
		}
	}
	if imp.Rate < 0 {
		return fmt.Errorf("rate %d is negative", imp.Rate)
	}
	if imp.Delay < 0 || imp.Jitter < 0 {
		return fmt.Errorf("delay %v or jitter %v is negative", imp.Delay, imp.Jitter)
	}
	if imp.Delay+imp.Jitter > maxDelay {
		return fmt.Errorf("delay+jitter %v is above %v", imp.Delay+imp.Jitter, maxDelay)
	}
	return nil
}

// needsUserspace reports whether frames of this direction must go through
// the userspace hop rather than kernel forwarding in M.
func (imp Impairment) needsUserspace(haveTBF bool) bool {
	return imp.Delay > 0 || imp.Jitter > 0 || imp.Reorder > 0 || imp.Duplicate > 0 || (imp.Rate > 0 && !haveTBF)
}

// DirStats counts what one direction did. All counters are cumulative since
// Setup; without a hop (no impairment, Config.Hop false) they stay zero.
type DirStats struct {
	Seen        uint64 // frames that entered M in this direction (XDP counter; includes ARP/ND/MLD)
	Lost        uint64 // frames dropped by Loss (XDP counter)
	Delayed     uint64 // frames the userspace hop held for Delay/Jitter
	Reordered   uint64 // frames held back behind the next one
	Duplicated  uint64 // extra copies sent
	RateQueued  uint64 // times the rate limiter held frames back (tbf overlimits, plus userspace)
	RateDropped uint64 // frames the rate limiter dropped (tbf drops, plus userspace queue > 50 ms)
	HopDropped  uint64 // frames the userspace hop lost: its queue was full or the send failed
}

// Stats is the per-direction statistics of a network.
type Stats struct {
	AtoB, BtoA DirStats
}

// errNoHop is returned by SetImpairment on a network built without M.
var errNoHop = errors.New("network has no hop: it was built with zero impairment; set Config.Hop to change impairment at runtime")

// SetImpairment changes both directions' impairment at runtime. Frames
// already queued in the userspace hop keep the schedule they got.
func (n *Network) SetImpairment(aToB, bToA Impairment) error {
	for _, c := range []struct {
		dir string
		imp Impairment
	}{{"AtoB", aToB}, {"BtoA", bToA}} {
		if err := c.imp.validate(); err != nil {
			return fmt.Errorf("testnet: %s: %w", c.dir, err)
		}
	}
	if n.hop == nil {
		if aToB.isZero() && bToA.isZero() {
			return nil
		}
		return fmt.Errorf("testnet: set impairment on %s: %w", n.ID, errNoHop)
	}
	if err := n.hop.setImpairment([2]Impairment{aToB, bToA}); err != nil {
		return fmt.Errorf("testnet: set impairment on %s: %w", n.ID, err)
	}
	return nil
}

// Stats returns the counters of both directions. Counters that cannot be
// read (e.g. after Close) read as zero.
func (n *Network) Stats() Stats {
	if n.hop == nil {
		return Stats{}
	}
	return Stats{AtoB: n.hop.stats(0), BtoA: n.hop.stats(1)}
}
