package main

import (
	"fmt"
	"io"
	"strings"
	"sync/atomic"
	"time"
)

// progress draws a one-line progress bar on a terminal, redrawn in place.
// It is only used when stderr is a terminal, so logs and pipes never see
// control characters.
//
// Every redraw is "\r", the line, then ESC[K (erase to end of line): the
// line gets shorter as the rate or sizes lose digits, and without the erase
// the tail of the previous one stays on screen ("271.5 MB/s/s"). The line
// also never reaches the terminal's last column: there the terminal wraps,
// and "\r" would go back to the start of the wrapped row, leaving the first
// part of every redraw above it.
type progress struct {
	w     io.Writer
	cols  func() int // the terminal's width now; 0 = unknown
	total uint64
	done  *atomic.Uint64
	start time.Time
	stop  chan struct{}
	ended chan struct{}
}

// progressInterval is how often the bar is redrawn: fast enough to look
// live, slow enough to cost nothing.
const progressInterval = 200 * time.Millisecond

// Bar geometry: at most maxBarWidth cells of bar; below minBarWidth cells
// the bar is dropped and only the numbers are shown. defaultCols is assumed
// when the terminal's width is unknown.
const (
	maxBarWidth = 40
	minBarWidth = 10
	defaultCols = 80
)

// eraseLine returns the cursor to column 0 and erases the whole line.
const eraseLine = "\r\033[K"

// startProgress draws until finish is called. cols reports the terminal's
// width (nil or 0: unknown); it is asked on every redraw, so a resized
// window is followed.
func startProgress(w io.Writer, cols func() int, total uint64, done *atomic.Uint64) *progress {
	p := &progress{w: w, cols: cols, total: total, done: done, start: time.Now(),
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
			c := 0
			if p.cols != nil {
				c = p.cols()
			}
			fmt.Fprint(p.w, progressLine(c, p.done.Load(), p.total, time.Since(p.start)))
		case <-p.stop:
			// Erase the bar so the summary starts on a clean line.
			fmt.Fprint(p.w, eraseLine)
			return
		}
	}
}

// finish stops drawing and erases the bar; after it returns the cursor is
// at the start of an empty line.
func (p *progress) finish() {
	close(p.stop)
	<-p.ended
}

// progressLine is one redraw for a terminal cols wide: back to column 0,
// the bar, then erase whatever the previous, longer redraw left.
func progressLine(cols int, done, total uint64, elapsed time.Duration) string {
	return "\r" + renderProgress(cols, done, total, elapsed) + "\033[K"
}

// renderProgress formats the bar to fit in cols-1 columns (cols <= 0:
// defaultCols): [=====>    ]  42% 12.0 MiB/28.6 MiB 95.1 MB/s. The bar
// shrinks to make room for the numbers and is left out when fewer than
// minBarWidth cells remain; on a terminal too narrow even for the numbers
// they are cut.
func renderProgress(cols int, done, total uint64, elapsed time.Duration) string {
	if cols <= 0 {
		cols = defaultCols
	}
	frac := 1.0
	if total > 0 {
		frac = min(float64(done)/float64(total), 1)
	}
	text := fmt.Sprintf("%3.0f%% %s/%s %.1f MB/s", frac*100,
		formatSize(done), formatSize(total), mbps(done, elapsed))
	room := cols - 1                            // never the last column (see progress)
	width := min(room-len(text)-3, maxBarWidth) // "[", "] "
	if width < minBarWidth {
		text = strings.TrimLeft(text, " ")
		return text[:max(min(len(text), room), 0)]
	}
	fill := int(frac * float64(width))
	bar := strings.Repeat("=", fill)
	if fill < width {
		bar += ">" + strings.Repeat(" ", width-fill-1)
	}
	return "[" + bar + "] " + text
}
