package blast

import (
	"sync/atomic"
	"time"
)

// watchdog ends a blocked ReadBatch when nothing has happened for too long.
// link.Link has no read deadline, only Close, so the watchdog calls fire
// (which closes the link) once its limit has passed without a kick.
//
// The hot path pays one atomic add per kick; the watchdog itself wakes every
// tick, so a limit is honoured to within one tick.
type watchdog struct {
	progress atomic.Uint64
	limit    atomic.Int64 // nanoseconds; 0: disarmed
	fired    atomic.Bool
	stop     chan struct{}
	done     chan struct{}
}

func startWatchdog(tick time.Duration, fire func()) *watchdog {
	w := &watchdog{stop: make(chan struct{}), done: make(chan struct{})}
	go w.loop(tick, fire)
	return w
}

func (w *watchdog) loop(tick time.Duration, fire func()) {
	defer close(w.done)
	t := time.NewTicker(tick)
	defer t.Stop()
	var (
		seen uint64
		last = time.Now()
	)
	for {
		select {
		case <-w.stop:
			return
		case <-t.C:
		}
		now := time.Now()
		lim := time.Duration(w.limit.Load())
		if p := w.progress.Load(); p != seen || lim <= 0 {
			seen, last = p, now
			continue
		}
		if now.Sub(last) >= lim {
			w.fired.Store(true)
			fire()
			return
		}
	}
}

// kick records progress.
func (w *watchdog) kick() { w.progress.Add(1) }

// arm sets the limit (0 disarms) and counts as progress, so the new limit
// runs from now.
func (w *watchdog) arm(limit time.Duration) {
	w.limit.Store(int64(limit))
	w.kick()
}

// expired reports whether the watchdog ran out and called fire.
func (w *watchdog) expired() bool { return w.fired.Load() }

// shutdown ends the watchdog and waits for it; fire is not called
// afterwards. Only the watchdog's owner calls it.
func (w *watchdog) shutdown() {
	select {
	case <-w.stop:
	default:
		close(w.stop)
	}
	<-w.done
}
