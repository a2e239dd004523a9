package udplink

import "github.com/flightline/flightline/transport/link"

// group is one sendmmsg entry built from msgs[start : start+n]. When n > 1
// the messages are sent as one UDP GSO super-datagram (their buffers are
// gathered by iovecs, not copied) that the kernel cuts into seg-byte
// datagrams.
//
// Invariants for n > 1 (checked by coalesce's tests): every message has the
// same Addr, every message but the last has exactly seg bytes, the last has
// 1..seg bytes, n <= maxSegs and the total is <= maxBytes. For n == 1, seg
// is the message length and no UDP_SEGMENT cmsg is attached.
type group struct {
	start, n, seg int
}

// coalesce appends to groups the GSO grouping of msgs and returns it. It is a
// pure function so the rules can be table-tested without a socket.
//
// A group grows while the next message goes to the same destination and
// either has exactly seg bytes, or is shorter (then it is the group's last
// message: the kernel allows only the final segment to be short). Empty
// datagrams are never coalesced: a zero gso_size is invalid.
func coalesce(groups []group, msgs []link.Message, maxBytes, maxSegs int) []group {
	for i := 0; i < len(msgs); {
		seg := len(msgs[i].Buf)
		g := group{start: i, n: 1, seg: seg}
		total := seg
		if seg > 0 {
			for j := i + 1; j < len(msgs) && g.n < maxSegs; j++ {
				l := len(msgs[j].Buf)
				if l == 0 || l > seg || total+l > maxBytes || msgs[j].Addr != msgs[i].Addr {
					break
				}
				g.n++
				total += l
				if l < seg {
					break
				}
			}
		}
		groups = append(groups, g)
		i += g.n
	}
	return groups
}
