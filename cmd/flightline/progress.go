package main

import (
	"fmt"
	"io"
	"strings"
	"sync/atomic"
	"time"
)

// progress draws a one-line progress bar on a terminal, redrawn in place
// with \r. It is only used when stderr is a terminal, so logs and pipes
// never see control characters.
type progress struct {
	w     io.Writer
	total uint64
	done  *atomic.Uint64
	start time.Time
	stop  chan struct{}
	ended chan struct{}
}

// progressInterval is how often the bar is redrawn: fast enough to look
// live, slow enough to cost nothing.
const progressInterval = 200 * time.Millisecond

// startProgress draws until finish is called.
func startProgress(w io.Writer, total uint64, done *atomic.Uint64) *progress {
	p := &progress{w: w, total: total, done: done, start: time.Now(),
		stop: make(chan struct{}), ended: make(chan struct{})}
	go p.loop()
	return p
}

func (p *progress) loop() {
	defer close(p.ended)
	t := time.NewTicker(progressInterval)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			fmt.Fprint(p.w, "\r"+renderProgress(40, p.done.Load(), p.total, time.Since(p.start)))
		case <-p.stop:
			// Erase the bar so the summary starts on a clean line.
			fmt.Fprint(p.w, "\r\033[K")
			return
		}
	}
}

// finish stops drawing and erases the bar.
func (p *progress) finish() {
	close(p.stop)
	<-p.ended
}

// renderProgress formats the bar: [=====>    ]  42% 12.0 MiB/28.6 MiB 95.1 MB/s.
func renderProgress(width int, done, total uint64, elapsed time.Duration) string {
	frac := 1.0
	if total > 0 {
		frac = min(float64(done)/float64(total), 1)
	}
	fill := int(frac * float64(width))
	bar := strings.Repeat("=", fill)
	if fill < width {
		bar += ">" + strings.Repeat(" ", width-fill-1)
	}
	return fmt.Sprintf("[%s] %3.0f%% %s/%s %.1f MB/s", bar, frac*100,
		formatSize(done), formatSize(total), mbps(done, elapsed))
}
