package main

import (
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/require"
)

func TestRenderProgress(t *testing.T) {
	require.Equal(t, "[====================>                   ]  50% 5.0 MiB/10.0 MiB 5.2 MB/s",
		renderProgress(80, 5<<20, 10<<20, time.Second))
	// A narrower terminal gets a narrower bar, then none.
	require.Equal(t, "[========>       ]  50% 5.0 MiB/10.0 MiB 5.2 MB/s", renderProgress(50, 5<<20, 10<<20, time.Second))
	require.Equal(t, "50% 5.0 MiB/10.0 MiB 5.2 MB/s", renderProgress(40, 5<<20, 10<<20, time.Second))
	require.Equal(t, "50% 5.0 MiB/", renderProgress(13, 5<<20, 10<<20, time.Second))
	require.Equal(t, "", renderProgress(1, 5<<20, 10<<20, time.Second))
	// Unknown width: 80 columns.
	require.Equal(t, renderProgress(80, 5<<20, 10<<20, time.Second), renderProgress(0, 5<<20, 10<<20, time.Second))
	// Zero total (only empty files) is complete, not a division by zero.
	require.True(t, strings.HasPrefix(renderProgress(80, 0, 0, 0), "[========================================] 100%"))
	// More than total (a file grew) is clamped.
	require.True(t, strings.HasPrefix(renderProgress(60, 9, 3, time.Second), "[====="), renderProgress(60, 9, 3, time.Second))

	// Whatever the numbers, the line stays off the last column.
	for _, cols := range []int{2, 20, 45, 60, 79, 80, 81, 132, 300} {
		for _, n := range []struct {
			done, total uint64
			elapsed     time.Duration
		}{{0, 1, 0}, {1023, 1 << 50, time.Millisecond}, {1 << 50, 1 << 50, time.Nanosecond}, {999 << 30, 1000 << 30, time.Second}} {
			s := renderProgress(cols, n.done, n.total, n.elapsed)
			require.LessOrEqual(t, len(s), cols-1, "cols %d: %q", cols, s)
			if strings.HasPrefix(s, "[") {
				require.LessOrEqual(t, strings.Index(s, "]")-1, maxBarWidth)
			}
		}
	}
}

// TestProgressRedrawsCleanly runs the bar (on a fake clock) through a
// transfer whose line gets longer and shorter, on a terminal emulator of
// several widths, and checks after every redraw that the row shows exactly
// that redraw — nothing left of a longer predecessor, nothing wrapped onto
// the next row — and that the summary printed after finish starts on a clean
// line with nothing else on screen.
func TestProgressRedrawsCleanly(t *testing.T) {
	const total = 3000 << 20
	// Bytes done, and for how long before the next step: fast first (five
	// digits of MB/s), then stalled for 30 s so the rate loses digits at
	// every redraw, then done.
	steps := []struct {
		done uint64
		hold time.Duration
	}{{2000 << 20, progressInterval}, {2000 << 20, 30 * time.Second}, {total, progressInterval}}
	const summary = "sent 1 file, 3145728000 bytes in 30.4s: 103.5 MB/s (0.83 Gbit/s), handshake 1ms, rtt 50µs, retransmits 0, lost 0, datapath udp"
	shrank := false // on a narrow terminal the bar takes up what the numbers give back
	for _, cols := range []int{40, 60, 80, 132} {
		t.Run(fmt.Sprint(cols), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				scr := newScreen(cols, 8)
				var done atomic.Uint64
				p := startProgress(scr, func() int { return cols }, total, &done)
				for _, st := range steps {
					done.Store(st.done)
					time.Sleep(st.hold)
					synctest.Wait() // the redraw at this tick is on screen
				}
				p.finish()

				redraws := scr.writes[:len(scr.writes)-1]
				require.Len(t, redraws, int(30*time.Second/progressInterval)+2, "one write per tick")
				for i, w := range redraws {
					require.True(t, strings.HasPrefix(w.data, "\r") && strings.HasSuffix(w.data, "\033[K"), "redraw %d: %q", i, w.data)
					line := strings.TrimSuffix(strings.TrimPrefix(w.data, "\r"), "\033[K")
					require.Equal(t, line, w.rows[0], "redraw %d left something behind", i)
					require.Empty(t, strings.Join(w.rows[1:], ""), "redraw %d wrapped", i)
					if i > 0 && len(line) < len(redraws[i-1].rows[0]) {
						shrank = true
					}
				}
				require.Empty(t, strings.Join(scr.rows(), ""), "finish leaves the screen empty")

				fmt.Fprint(scr, summary+"\n")
				wantRows := wrap(summary, cols)
				require.Equal(t, wantRows, scr.rows()[:len(wantRows)], "summary starts at column 0 of a clean row")
				require.Empty(t, strings.Join(scr.rows()[len(wantRows):], ""))
			})
		})
	}
	require.True(t, shrank, "the steps must make the line shrink at least once")
}

// wrap splits s the way a terminal cols wide shows it.
func wrap(s string, cols int) []string {
	var rows []string
	r := []rune(s)
	for len(r) > cols {
		rows = append(rows, strings.TrimRight(string(r[:cols]), " "))
		r = r[cols:]
	}
	return append(rows, string(r))
}

// screen is the part of a VT100-style terminal the progress bar relies on:
// printable characters with auto-wrap at the right margin (xterm's deferred
// wrap), CR, LF, and ESC[K (erase from the cursor to the end of the line).
// It records the visible rows after every Write.
type screen struct {
	cols     int
	cells    [][]rune
	row, col int
	pending  bool // cursor past the last column: the next character wraps
	writes   []screenWrite
}

type screenWrite struct {
	data string
	rows []string
}

func newScreen(cols, rows int) *screen {
	s := &screen{cols: cols, cells: make([][]rune, rows)}
	for i := range s.cells {
		s.cells[i] = []rune(strings.Repeat(" ", cols))
	}
	return s
}

func (s *screen) Write(b []byte) (int, error) {
	in := []rune(string(b))
	for i := 0; i < len(in); i++ {
		switch c := in[i]; {
		case c == '\r':
			s.col, s.pending = 0, false
		case c == '\n':
			s.lineFeed()
			s.pending = false
		case c == 0x1b:
			if i+2 >= len(in) || in[i+1] != '[' || in[i+2] != 'K' {
				return 0, fmt.Errorf("screen: unsupported escape %q", string(in[i:min(i+4, len(in))]))
			}
			i += 2
			for x := s.col; x < s.cols; x++ {
				s.cells[s.row][x] = ' '
			}
		case c < 0x20:
			return 0, fmt.Errorf("screen: unsupported control %#x", c)
		default:
			if s.pending {
				s.col, s.pending = 0, false
				s.lineFeed()
			}
			s.cells[s.row][s.col] = c
			if s.col == s.cols-1 {
				s.pending = true
			} else {
				s.col++
			}
		}
	}
	s.writes = append(s.writes, screenWrite{data: string(b), rows: s.rows()})
	return len(b), nil
}

func (s *screen) lineFeed() {
	if s.row < len(s.cells)-1 {
		s.row++
		return
	}
	copy(s.cells, s.cells[1:])
	s.cells[len(s.cells)-1] = []rune(strings.Repeat(" ", s.cols))
}

// rows is the screen's text, each row without trailing blanks.
func (s *screen) rows() []string {
	out := make([]string, len(s.cells))
	for i, r := range s.cells {
		out[i] = strings.TrimRight(string(r), " ")
	}
	return out
}
