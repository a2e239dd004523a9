package flight

import "sync/atomic"

// Counter is a connection-wide byte count (the flight size) shared by the
// senders, which Add before every socket send, and by whoever releases
// records. It never clamps: a negative result of Release is an accounting
// bug that the caller must report (the Ledger does), because clamping would
// hide a double release behind a plausible value.
type Counter struct{ v atomic.Int64 }

// Add adds n bytes and returns the new value.
func (c *Counter) Add(n int) int64 { return c.v.Add(int64(n)) }

// Release subtracts n bytes and returns the new value, which is negative if
// more was released than added.
func (c *Counter) Release(n int) int64 { return c.v.Add(-int64(n)) }

// Load returns the current value.
func (c *Counter) Load() int64 { return c.v.Load() }
