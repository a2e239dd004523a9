// Package flight tracks sent packets and accounts flight size for one
// connection: the sent-packet records that ACK processing, loss detection and
// retransmission work on, and the connection-wide count of bytes in flight
// that congestion control compares with its window.
//
// The central invariant is "tracked iff in flight": a packet's bytes are in
// the flight count exactly while its record is tracked, plus the bytes
// charged for sends that have not yet been tracked or released. Every release
// happens by removing a record (ACK, abandon, stream drop, close) or by
// ReleaseUnsent for a send that failed, and releases the Size recorded at
// Charge/Track time, so each charged byte is released exactly once.
// Retransmission never removes a record; see Ledger.Refresh.
//
// Ledger is the API a connection uses; Tracker is the sharded record store
// underneath it. docs/invariants.md lists the release paths, the lock rules
// and the checker.
package flight
