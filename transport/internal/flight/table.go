package flight

// table is an open-addressing hash from uint64 to *V with linear probing and
// backward-shift deletion. There are no tombstones, so a table that has
// reached its working size never allocates again and lookups never slow down
// with churn — which is why it replaces a Go map for the PN index (a map
// allocates on growth and keeps deleted slots around).
//
// A slot is empty iff its value is nil, so every uint64 is a valid key
// (PN 0, Control = MaxUint64). Not safe for concurrent use: each shard's
// tables are guarded by the shard mutex.
type table[V any] struct {
	keys  []uint64
	vals  []*V
	shift uint // 64 - log2(len(vals))
	n     int
}

const minTableSize = 16

// slot is Fibonacci hashing: it spreads arithmetic progressions (PNs of one
// shard are spaced by the shard count) evenly over the table.
func (t *table[V]) slot(k uint64) uint64 { return (k * 0x9E3779B97F4A7C15) >> t.shift }

func (t *table[V]) init(size int) {
	bits := uint(0)
	for 1<<bits < size {
		bits++
	}
	t.keys = make([]uint64, 1<<bits)
	t.vals = make([]*V, 1<<bits)
	t.shift = 64 - bits
	t.n = 0
}

func (t *table[V]) get(k uint64) *V {
	if t.n == 0 {
		return nil
	}
	mask := uint64(len(t.vals) - 1)
	for i := t.slot(k); ; i = (i + 1) & mask {
		v := t.vals[i]
		if v == nil || t.keys[i] == k {
			return v
		}
	}
}

// insert adds k→v unless k is present, in which case it changes nothing and
// returns the present value.
func (t *table[V]) insert(k uint64, v *V) (present *V) {
	// Keep the load factor <= 3/4: probe sequences stay short and an empty
	// slot always exists, which terminates every probe loop.
	if (t.n+1)*4 > len(t.vals)*3 {
		t.grow()
	}
	mask := uint64(len(t.vals) - 1)
	for i := t.slot(k); ; i = (i + 1) & mask {
		switch {
		case t.vals[i] == nil:
			t.keys[i], t.vals[i] = k, v
			t.n++
			return nil
		case t.keys[i] == k:
			return t.vals[i]
		}
	}
}

// remove deletes k and returns its value, or nil if absent.
func (t *table[V]) remove(k uint64) *V {
	if t.n == 0 {
		return nil
	}
	mask := uint64(len(t.vals) - 1)
	i := t.slot(k)
	for ; ; i = (i + 1) & mask {
		if t.vals[i] == nil {
			return nil
		}
		if t.keys[i] == k {
			break
		}
	}
	v := t.vals[i]
	// Backward shift: pull later entries of the probe run into the hole when
	// the hole lies on their probe path, i.e. their home slot h is not
	// cyclically inside (i, j]. The run stays gap-free, so every remaining key
	// is still reachable from its home without tombstones.
	for j := (i + 1) & mask; t.vals[j] != nil; j = (j + 1) & mask {
		h := t.slot(t.keys[j])
		if (j-h)&mask >= (j-i)&mask {
			t.keys[i], t.vals[i] = t.keys[j], t.vals[j]
			i = j
		}
	}
	t.keys[i], t.vals[i] = 0, nil
	t.n--
	return v
}

func (t *table[V]) grow() {
	oldK, oldV := t.keys, t.vals
	size := 2 * len(oldV)
	if size < minTableSize {
		size = minTableSize
	}
	t.init(size)
	for i, v := range oldV {
		if v != nil {
			t.insert(oldK[i], v)
		}
	}
}

// each calls fn for every entry (test and debug use).
func (t *table[V]) each(fn func(k uint64, v *V)) {
	for i, v := range t.vals {
		if v != nil {
			fn(t.keys[i], v)
		}
	}
}
