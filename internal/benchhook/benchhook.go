// Package benchhook holds switches that exist only so the benchmark harness
// (module github.com/flightline/flightline/bench, which may import this
// internal package because its import path lies under the repository's) can
// measure what a design decision buys. Nothing in production sets them, and
// no production code should: each switch turns flightline into something
// worse on purpose.
package benchhook

import "sync/atomic"

// keepAbortedFlight is false by default, the only correct setting.
var keepAbortedFlight atomic.Bool

// SetAbortRelease turns flightline's stream-abort release on (true, the
// default) or off (false), process-wide, for every connection.
//
// With the release off, a stream abort no longer drops the stream's tracked
// packets from the flight ledger (Conn.releaseStream skips
// Ledger.DropStream): the records stay tracked and their bytes stay in
// flight until each is acknowledged or abandoned at the retransmit limit,
// and until then they are detected lost and retransmitted like any other
// packet — which is how the reference design (freenet) behaved, leaving
// other streams of the connection starved of congestion window. Everything
// else about the abort is unchanged (the stream fails, RESET_STREAM is
// sent). Accounting stays exact: bytes still leave flight exactly once,
// through the ACK, abandon or connection-close path.
//
// It exists only so the bench/internal/abort scenario can show the cost of
// the reference design next to flightline's; never use it in production.
// Tests that turn it off must turn it back on (t.Cleanup).
func SetAbortRelease(on bool) { keepAbortedFlight.Store(!on) }

// AbortReleaseDisabled reports whether SetAbortRelease(false) is in effect.
func AbortReleaseDisabled() bool { return keepAbortedFlight.Load() }
