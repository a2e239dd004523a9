package handshake

import "sync"

// DefaultStaticCacheCapacity is the default bound on initiator keys whose
// static-static DH a Responder keeps.
const DefaultStaticCacheCapacity = 1 << 12

// staticCache keeps DH(s_r, s_i) per initiator static key. It is the same
// for every handshake from that key — one client dialing many connections,
// or reconnecting — so a hit saves one of the responder's five X25519
// multiplications per handshake (WireGuard precomputes it per configured
// peer; a listener that accepts any key can only cache it).
//
// Only initiators that completed authentication enter it (Accept puts
// after the payload decrypted, Allow passed and the replay check passed),
// so junk initiations cannot evict real clients — though anyone may mint
// keys and authenticate with them, which only costs them a handshake each
// and us a miss.
//
// Bounded like replayTable, with two generations: lookups consult both,
// inserts go to cur, and when cur holds capacity/2 keys the old generation
// is wiped and dropped and cur becomes old. At most capacity entries of
// about 100 bytes each (400 KiB at the default).
//
// The values are secrets: entries are wiped when their generation is
// dropped, and callers wipe the copies get returns. A hit is faster than a
// miss, so someone who can time the responder's CPU learns whether a key
// handshook recently; it cannot learn the key material, and a handshake
// that fails authentication gets no reply either way.
type staticCache struct {
	mu       sync.Mutex
	half     int // 0: disabled
	cur, old map[PublicKey]*[32]byte
}

func (c *staticCache) init(capacity int) {
	if capacity <= 0 {
		return
	}
	c.half = max(capacity/2, 1)
	c.cur = make(map[PublicKey]*[32]byte)
}

// get copies the cached DH for key into out and reports whether there was
// one.
func (c *staticCache) get(key *PublicKey, out *[32]byte) bool {
	if c.half == 0 {
		return false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	v := c.cur[*key]
	if v == nil {
		v = c.old[*key]
	}
	if v == nil {
		return false
	}
	*out = *v
	return true
}

// put caches ss for key (copying it).
func (c *staticCache) put(key *PublicKey, ss *[32]byte) {
	if c.half == 0 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if v := c.cur[*key]; v != nil {
		*v = *ss
		return
	}
	if len(c.cur) >= c.half {
		for _, v := range c.old {
			clear(v[:])
		}
		c.old, c.cur = c.cur, make(map[PublicKey]*[32]byte, c.half)
	}
	v := new([32]byte)
	*v = *ss
	c.cur[*key] = v
}

// len returns the number of keys cached (for tests).
func (c *staticCache) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.cur) + len(c.old)
}
