package transport

import "reflect"

// ClosedConnStats sums the counters of an endpoint's connections that were
// torn down, so a monitor summing Stats over live connections (package
// metrics) never sees a total go backwards when a connection closes, nor
// misses one that lived between two looks.
type ClosedConnStats struct {
	// Conns is how many connections were torn down, including
	// listener-side ones that never proved their peer's address.
	Conns uint64
	// Stats holds, in every uint64 field (the counters), the sum of those
	// connections' final values; every other field is zero (gauges,
	// RTTs and names of closed connections mean nothing summed).
	Stats Stats
}

// addCounters adds src's counters — exactly its uint64 fields — to dst.
// Reflection keeps this in step with Stats as counters are added; it runs
// once per connection teardown, never per packet.
func addCounters(dst *Stats, src *Stats) {
	d, s := reflect.ValueOf(dst).Elem(), reflect.ValueOf(src).Elem()
	for i := range d.NumField() {
		if f := d.Field(i); f.Kind() == reflect.Uint64 {
			f.SetUint(f.Uint() + s.Field(i).Uint())
		}
	}
}

// ConnSnapshot returns the endpoint's connections that completed their
// handshake (for a listener: whose peer also proved its address), in no
// particular order, and the summed counters of the connections already
// torn down. Both are read under one lock, so each connection is counted
// in exactly one of them. It is for monitoring and costs one map walk.
func (e *Endpoint) ConnSnapshot() (live []*Conn, closed ClosedConnStats) {
	e.connsMu.RLock()
	defer e.connsMu.RUnlock()
	live = make([]*Conn, 0, len(e.conns))
	for id, c := range e.conns {
		if !e.hs.isPending(id) {
			live = append(live, c)
		}
	}
	return live, e.closedConns
}

// Conns returns the endpoint's established connections (see ConnSnapshot).
func (e *Endpoint) Conns() []*Conn {
	live, _ := e.ConnSnapshot()
	return live
}
