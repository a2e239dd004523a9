package transport

import (
	"net/netip"
	"sync"
	"time"
)

// Per-source state of the handshake defences: token buckets, connection
// counts and log throttling are keyed by a source prefix, never by the
// exact address and port, so one host cannot multiply its share by using
// more ports (or, over IPv6, more addresses of its own /64).

// sourcePrefix is the unit per-source limits count in: the IPv4 address
// (/32, IPv4-mapped IPv6 unmapped first) or the /64 of an IPv6 address, as
// WireGuard's handshake rate limiter does. A /64 is what one IPv6 host (or
// one customer) usually gets, so counting smaller units would hand one host
// 2^64 buckets.
func sourcePrefix(ap netip.AddrPort) netip.Prefix {
	a := ap.Addr().Unmap().WithZone("")
	bits := 32
	if a.Is6() {
		bits = 64
	}
	p, err := a.Prefix(bits)
	if err != nil { // the zero Addr: one shared bucket
		return netip.Prefix{}
	}
	return p
}

// tokenBucket is a token bucket on an injected clock: rate tokens per
// second, at most burst tokens banked. The zero value is empty; fill it
// with reset.
type tokenBucket struct {
	tokens float64
	last   time.Time
}

func (b *tokenBucket) reset(now time.Time, burst float64) {
	b.tokens, b.last = burst, now
}

// take refills the bucket for the time since the last call and takes one
// token if there is one. A clock that steps back refills nothing.
func (b *tokenBucket) take(now time.Time, rate, burst float64) bool {
	if d := now.Sub(b.last); d > 0 {
		b.tokens = min(burst, b.tokens+d.Seconds()*rate)
		b.last = now
	}
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}

// full reports whether the bucket would be full at now: such an entry
// carries no information and can be forgotten.
func (b *tokenBucket) full(now time.Time, rate, burst float64) bool {
	return b.tokens+now.Sub(b.last).Seconds()*rate >= burst
}

// Per-source handshake rate limit. It applies only under load, to
// initiations that carried a valid mac2 (WireGuard's numbers): the cookie
// proved the source receives at its address, so a spoofer cannot spend
// someone else's tokens.
const (
	// SourceHandshakeRate is the initiations per second one source prefix
	// may have processed while the listener is under load.
	SourceHandshakeRate = 20
	// SourceHandshakeBurst is how many it may have processed at once.
	SourceHandshakeBurst = 5
	// maxSourceBuckets bounds the per-source table. Entries are only made
	// for sources that proved their address with a cookie and are forgotten
	// once full again (a quarter second after their last initiation), so
	// the bound is reached only by a very wide, address-validated flood;
	// beyond it new sources are limited until entries age out.
	maxSourceBuckets = 1 << 16
)

// sourceLimiter is a token bucket per source prefix. Safe for concurrent use.
type sourceLimiter struct {
	mu          sync.Mutex
	rate, burst float64
	max         int
	buckets     map[netip.Prefix]*tokenBucket
}

func newSourceLimiter(rate, burst float64, max int) *sourceLimiter {
	return &sourceLimiter{rate: rate, burst: burst, max: max, buckets: make(map[netip.Prefix]*tokenBucket)}
}

// allow takes one token from src's bucket.
func (l *sourceLimiter) allow(now time.Time, src netip.Prefix) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	b := l.buckets[src]
	if b == nil {
		if len(l.buckets) >= l.max {
			l.gcLocked(now)
			if len(l.buckets) >= l.max {
				return false
			}
		}
		b = &tokenBucket{}
		b.reset(now, l.burst)
		l.buckets[src] = b
	}
	return b.take(now, l.rate, l.burst)
}

// gc forgets the buckets that are full again.
func (l *sourceLimiter) gc(now time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.gcLocked(now)
}

func (l *sourceLimiter) gcLocked(now time.Time) {
	for k, b := range l.buckets {
		if b.full(now, l.rate, l.burst) {
			delete(l.buckets, k)
		}
	}
}

func (l *sourceLimiter) len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.buckets)
}

// logThrottle lets a log line about a source through at most once per
// interval per (source prefix, kind), so hostile input can never turn into a
// log flood. The table is bounded: when it is full of live entries, lines
// about new sources share one slot per interval.
type logThrottle struct {
	mu       sync.Mutex
	interval time.Duration
	max      int
	last     map[logKey]time.Time
	overflow time.Time // last line let through while the table was full
}

type logKey struct {
	src  netip.Prefix
	kind string
}

// handshakeLogInterval is how often one source can cause each kind of
// handshake log line.
const handshakeLogInterval = time.Minute

const maxLogSources = 4096

func newLogThrottle(interval time.Duration, max int) *logThrottle {
	return &logThrottle{interval: interval, max: max, last: make(map[logKey]time.Time)}
}

// allow reports whether a line of kind about src may be logged at now.
func (t *logThrottle) allow(now time.Time, src netip.Prefix, kind string) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	k := logKey{src, kind}
	if last, ok := t.last[k]; ok {
		if now.Sub(last) < t.interval && !now.Before(last) {
			return false
		}
		t.last[k] = now
		return true
	}
	if len(t.last) >= t.max {
		for k, last := range t.last {
			if now.Sub(last) >= t.interval || now.Before(last) {
				delete(t.last, k)
			}
		}
	}
	if len(t.last) >= t.max {
		if !t.overflow.IsZero() && now.Sub(t.overflow) < t.interval && !now.Before(t.overflow) {
			return false
		}
		t.overflow = now
		return true
	}
	t.last[k] = now
	return true
}
