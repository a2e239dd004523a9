// Package monotime is a compact monotonic clock: nanoseconds since process
// start in an int64. It is 8 bytes where time.Time is 24, and it is plain
// data, so state machines take "now" as an argument and tests drive them with
// any value they like.
package monotime

import "time"

// Time is a monotonic instant in nanoseconds since an arbitrary process epoch.
// The zero value means "unset".
type Time int64

var epoch = time.Now()

// offset keeps Now positive even where the clock reads earlier than epoch:
// inside a testing/synctest bubble time starts at 2000-01-01, decades
// before the process's epoch, and a negative Now would compare below every
// zero "unset" sentinel. 2^62 ns is 146 years; values stay far from
// overflow.
const offset = 1 << 62

// Now returns the current monotonic time. It is never zero.
func Now() Time { return Time(time.Since(epoch)) + offset }

// Add returns t+d.
func (t Time) Add(d time.Duration) Time { return t + Time(d) }

// Sub returns t-u as a duration.
func (t Time) Sub(u Time) time.Duration { return time.Duration(t - u) }

// IsZero reports whether t is unset.
func (t Time) IsZero() bool { return t == 0 }

// Before reports whether t is before u.
func (t Time) Before(u Time) bool { return t < u }

// After reports whether t is after u.
func (t Time) After(u Time) bool { return t > u }

// ToTime converts t to wall-clock-free time.Time suitable for timers.
func (t Time) ToTime() time.Time { return epoch.Add(time.Duration(t - offset)) }

// Until returns the duration from now until t.
func Until(t Time) time.Duration { return t.Sub(Now()) }
