// Package testnet is the harness every line-rate and end-to-end test of
// flightline runs on: network namespaces joined by veth pairs, with optional
// impairment (loss, rate, delay, jitter, reordering, duplication).
//
// Topologies. With no impairment a network is two namespaces joined by one
// veth pair:
//
//	A [fltnXXXXa] <--veth--> [fltnXXXXb] B
//
// With any impairment (or Config.Hop) a third namespace M sits in the middle
// as a transparent layer-2 hop; A and B still see each other's MAC addresses:
//
//	A [fltnXXXXa] <--veth--> [fltnXXXXma] M [fltnXXXXmb] <--veth--> [fltnXXXXb] B
//
// Impairment lives only in M, never on A's or B's interfaces, so tests are
// free to attach their own XDP programs (AF_XDP) to A.Ifname and B.Ifname, and
// AF_XDP transmit (which bypasses qdiscs and tc) is impaired like everything
// else. In M, per direction:
//
//   - loss: a generic-mode XDP program on the ingress interface drops with
//     probability Loss and counts packets seen and dropped (no netem here);
//   - forwarding: a tcx ingress program redirects to the other interface,
//     unless the direction needs the userspace hop;
//   - rate: a tbf qdisc on the egress interface (userspace fallback when the
//     kernel has no tbf);
//   - delay, jitter, reorder, duplicate: an in-process userspace hop reading
//     and writing frames with AF_PACKET sockets in M.
//
// All names start with Prefix. Each network holds an flock on a file under
// LockDir for its lifetime, so GC can tell a live network of another test
// process from the leftovers of a killed one.
package testnet
