// Package abort is the stream-abort benchmark scenario: it shows what
// flightline's abort release (Conn.releaseStream dropping an aborted
// stream's packets from the flight ledger) buys over the reference design,
// in which an aborted stream's in-flight packets kept their share of the
// congestion window until each was acknowledged or timed out, starving the
// connection's other streams.
//
// One connection, two streams, flightline's UDP datapath, over a testnet
// path with an A→B bottleneck (default 100 Mbit/s, tbf with its 50 ms
// drop-tail queue) and an added round-trip delay (default 10 ms, on the ACK
// direction; Config.Delay says why):
//
//  1. Stream A sends bulk alone for Config.Warmup, so the congestion window
//     is steady and the path's rate is "full rate" (SteadyMBps, A's median
//     delivered goodput over the last Config.Steady of the warm-up).
//  2. The loss event: the A→B direction drops everything (Loss 1). ACKs of
//     what was sent before still return for about one loaded RTT; then they
//     stop, and everything A has in flight — a whole window — is lost and
//     can never be acknowledged. The scenario waits exactly for that (ACK
//     counter quiet for Config.Quiet, at least one SRTT after the event),
//     which is well before the first retransmission timeout would collapse
//     the window.
//  3. The abort, at T = 0: the path is restored, then A is cancelled
//     (CancelWrite), then stream B starts sending bulk at once.
//  4. Measured from the abort: FirstByte, when B's first byte is read by
//     the receiver; FullRate, when B's receiver goodput, averaged over a
//     trailing window of two base RTTs (Config.Smooth) and evaluated every
//     millisecond, first reaches Config.Threshold (90 %) of SteadyMBps. The sender's FlightSize and CongestionWindow are sampled
//     every millisecond from Config.Lead before the loss event to the end,
//     next to both streams' goodput.
//
// Run does this with the release on (flightline) or off
// (internal/benchhook.SetAbortRelease(false): the aborted stream's records
// stay in the ledger and leave only when acknowledged or abandoned). With it
// on, A's lost window leaves flight at the abort, the congestion controller
// never hears of that loss, and B starts at the full window. With it off,
// the window stays full of A's dead packets: B can send nothing until they
// are declared lost (the first ACK after the abort, of A's RESET_STREAM,
// does that), retransmitted — a whole window of data nobody will read,
// paced through the same bottleneck — and acknowledged, and by then the
// controller has also cut its window for their loss.
//
// Why this variant rather than the end-to-end test's (blackholing the ACK
// path until A's window-wait timeout aborts it): with ACKs lost, A's data
// did arrive, so the first ACK after the path heals acknowledges all of it
// and the kept flight leaves within one RTT either way; and the seconds of
// waiting let retransmission timeouts collapse the window in both runs.
// Losing A's data and aborting before any timeout isolates the one thing
// the release changes: whose packets occupy the window after the abort.
//
// The scenario runs in the orchestrator's process, not through the runner:
// it changes impairment mid-run and reads the sender connection's Stats
// every millisecond. Sockets are made inside the testnet namespaces (Host.Run)
// and belong to them. The network is built and destroyed inside Run. The
// switch is process-wide, so Runs are serialised.
package abort
