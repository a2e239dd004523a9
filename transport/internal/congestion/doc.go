// Package congestion holds flightline's send-rate machinery: the RTT
// estimator (RFC 9002 §5), pluggable congestion controllers (CUBIC per
// RFC 9438, BBRv3 per draft-ietf-ccwg-bbr-06 with a bounded random-loss
// response, and a fixed-rate controller for benchmarks), the token-bucket
// pacer every packet passes through, and Window, which parks sender
// goroutines until the congestion window has room.
//
// Time is data. Every method that depends on time takes now as a
// monotime.Time, so tests drive the state machines with a fake clock and
// nothing in this package sleeps or reads the clock itself.
//
// Units: all byte counts are wire bytes of a packet (the UDP payload), the
// same unit the sender uses for its flight size.
//
// Concurrency: one goroutine (the ACK processor) is the single writer of RTT.
// A Controller's events (OnAck, OnLoss, OnRTO) may come from more than one
// goroutine and are serialised inside the controller. Readers on other goroutines
// (senders, statistics) use the RTT getters and Controller.Window,
// PacingRate and InSlowStart, which read atomics. Controller.OnSent may be
// called from sender goroutines. A Pacer is owned by the one goroutine that
// puts packets on the wire and is not safe for concurrent use.
package congestion
