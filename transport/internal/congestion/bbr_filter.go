package congestion

// roundMax is a windowed maximum over the last n rounds (n <= len(slots)),
// used for extra_acked (draft-ietf-ccwg-bbr-06 §"Estimating Aggregation":
// a max over ExtraAckedFilterLen = 10 round trips). Each slot holds the max
// of one round; advancing to a new round clears the oldest slot. O(n) reads,
// n is at most 10.
type roundMax struct {
	slots [10]float64
	round uint64 // round of slots[round%len]
	init  bool
}

// update folds v into round r's slot, keeping only the last n rounds.
func (f *roundMax) update(r uint64, v float64, n int) float64 {
	n = min(max(n, 1), len(f.slots))
	if !f.init {
		f.init, f.round = true, r
	}
	if r > f.round {
		if r-f.round >= uint64(len(f.slots)) {
			clear(f.slots[:])
		} else {
			for k := f.round + 1; k <= r; k++ {
				f.slots[k%uint64(len(f.slots))] = 0
			}
		}
		f.round = r
	}
	r = f.round // a late update for an older round counts in the current one
	i := r % uint64(len(f.slots))
	f.slots[i] = max(f.slots[i], v)
	m := 0.0
	for k := 0; k < n && uint64(k) <= r; k++ {
		m = max(m, f.slots[(r-uint64(k))%uint64(len(f.slots))])
	}
	return m
}
