package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"image/png"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestParseFlags(t *testing.T) {
	for _, tc := range []struct {
		name    string
		args    []string
		wantErr string
		check   func(t *testing.T, o options)
	}{
		{name: "defaults", check: func(t *testing.T, o options) {
			require.Equal(t, 256, o.SizeMiB)
			require.Equal(t, []int{1, 8}, o.Streams)
			require.Equal(t, allPeers, o.Peers)
			require.Equal(t, 55*time.Second, o.Timeout)
			require.True(t, o.Profile)
		}},
		{name: "subset", args: []string{"-size", "8", "-streams", "2", "-peers", "tcp, raw-udp"}, check: func(t *testing.T, o options) {
			require.Equal(t, 8, o.SizeMiB)
			require.Equal(t, []int{2}, o.Streams)
			require.Equal(t, []string{peerTCP, peerRaw}, o.Peers)
		}},
		{name: "zero size", args: []string{"-size", "0"}, wantErr: "-size 0"},
		{name: "bad streams", args: []string{"-streams", "1,x"}, wantErr: `"x"`},
		{name: "too many streams", args: []string{"-streams", "65"}, wantErr: `"65"`},
		{name: "unknown peer", args: []string{"-peers", "sctp"}, wantErr: `"sctp"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o, err := parseFlags(tc.args)
			if tc.wantErr != "" {
				require.ErrorContains(t, err, tc.wantErr)
				return
			}
			require.NoError(t, err)
			tc.check(t, o)
		})
	}
}

func TestGlyphs(t *testing.T) {
	lines := 0
	for line := range strings.Lines(glyphTable) {
		if strings.TrimSpace(line) != "" {
			lines++
			for _, row := range strings.Fields(line)[1:] {
				require.Len(t, row, glyphW, "line %q", line)
				require.Empty(t, strings.Trim(row, "#."), "line %q", line)
			}
		}
	}
	require.Len(t, glyphs, lines, "every table line parses to a distinct glyph")
	for _, r := range "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 ./-()%?" {
		g, ok := glyphs[r]
		require.True(t, ok, "glyph %q", r)
		if r != ' ' {
			require.NotEqual(t, [glyphH]uint8{}, g, "glyph %q is blank", r)
		}
	}
	require.Equal(t, 0, textWidth("", 2))
	require.Equal(t, (3*glyphAdvance-1)*2, textWidth("abc", 2))
}

func sampleReport() *Report {
	return &Report{SizeMiB: 64, GoVersion: "go1.26", GOOS: "linux", GOARCH: "amd64", NumCPU: 2, Results: []Result{
		{Peer: peerFlightline, Streams: 1, MBps: 500, Bytes: 1e9, CPUSeconds: 3, Notes: "a|b"},
		{Peer: peerRaw, Streams: 1, MBps: 1000},
		{Peer: peerTCP, Streams: 8, MBps: 250},
		{Peer: peerQUIC, Streams: 1, Error: "boom"},
	}}
}

func TestMarkdown(t *testing.T) {
	md := sampleReport().markdown()
	require.Contains(t, md, "| Peer | Goodput MB/s | vs raw UDP |")
	require.Contains(t, md, "| flightline 1 stream | 500.0 | 0.50 | 0.00 | 3.00 | a\\|b |")
	require.Contains(t, md, "| raw-udp | 1000.0 | 1.00 |")
	require.Contains(t, md, "| tcp 8 conns | 250.0 | 0.25 |")
	require.Contains(t, md, "**error:** boom")

	noRaw := &Report{Results: []Result{{Peer: peerTCP, Streams: 1, MBps: 10}}}
	require.Contains(t, noRaw.markdown(), "| tcp 1 conn | 10.0 | – |")
}

func TestChart(t *testing.T) {
	rep := sampleReport()
	var buf bytes.Buffer
	require.NoError(t, drawChart(&buf, rep))
	img, err := png.Decode(&buf)
	require.NoError(t, err)
	require.Equal(t, chartWidth, img.Bounds().Dx())
	require.Equal(t, titleHeight+len(rep.Results)*rowHeight+chartMargin, img.Bounds().Dy())

	// Bar lengths, measured on each row's middle line, are proportional
	// to goodput, the fastest spanning the whole bar area.
	l := layoutFor(rep)
	for i, r := range rep.Results {
		y := l.firstRowY + i*rowHeight + rowHeight/2
		want := peerColors[r.Peer]
		n := 0
		for x := l.barX0; x < l.barX0+l.barMaxW; x++ {
			cr, cg, cb, _ := img.At(x, y).RGBA()
			if uint8(cr>>8) == want.R && uint8(cg>>8) == want.G && uint8(cb>>8) == want.B {
				n++
			}
		}
		require.InDelta(t, float64(l.barMaxW)*r.MBps/1000, n, 1, "bar of %s", r.Label())
	}
}

// memPipe is an in-memory pipe for measure: io.Pipe streams that fail once
// ctx is done, as the contract requires.
func memPipe(failAccept bool) pipe {
	ch := make(chan io.Reader, 64)
	return pipe{
		open: func(ctx context.Context) (io.Writer, func() error, error) {
			r, w := io.Pipe()
			context.AfterFunc(ctx, func() { w.CloseWithError(ctx.Err()); r.CloseWithError(ctx.Err()) })
			ch <- r
			return w, w.Close, nil
		},
		accept: func(ctx context.Context) (io.Reader, error) {
			if failAccept {
				return nil, errors.New("accept refused")
			}
			select {
			case r := <-ch:
				return r, nil
			case <-ctx.Done():
				return nil, ctx.Err()
			}
		},
	}
}

func TestMeasure(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	m, err := measure(ctx, memPipe(false), 3, 3*chunk+3*1000)
	require.NoError(t, err)
	require.Equal(t, int64(3*chunk+3*1000), m.bytes)
	require.Positive(t, m.elapsed)

	// A failing side ends the measurement with its error, without waiting
	// for the deadline and without leaving writers blocked.
	start := time.Now()
	_, err = measure(ctx, memPipe(true), 2, 4*chunk)
	require.ErrorContains(t, err, "accept refused")
	require.Less(t, time.Since(start), 5*time.Second)
}

// TestRunAllPeers runs the whole command small: every peer, one and three
// streams, and checks what lands in the output directory.
func TestRunAllPeers(t *testing.T) {
	if testing.Short() {
		t.Skip("moves real traffic over loopback")
	}
	out := t.TempDir()
	var log bytes.Buffer
	err := run(context.Background(), options{
		SizeMiB: 4, Streams: []int{1, 3}, Peers: allPeers, Out: out,
		Timeout: 50 * time.Second, RunTimeout: 20 * time.Second, Profile: true,
	}, &log)
	t.Log(log.String())
	require.NoError(t, err)

	js, err := os.ReadFile(filepath.Join(out, "results.json"))
	require.NoError(t, err)
	var rep Report
	require.NoError(t, json.Unmarshal(js, &rep))
	require.Len(t, rep.Results, 7) // raw-udp runs once
	for _, r := range rep.Results {
		require.Empty(t, r.Error, r.Label())
		require.Positive(t, r.MBps, r.Label())
		if r.Peer != peerRaw { // a blast may lose datagrams
			require.Equal(t, int64(4<<20)/int64(r.Streams)*int64(r.Streams), r.Bytes, r.Label())
		}
	}
	for _, name := range []string{"results.md", "goodput.png", "flightline-1stream.cpu.pprof", "flightline-3stream.cpu.pprof"} {
		fi, err := os.Stat(filepath.Join(out, name))
		require.NoError(t, err)
		require.Positive(t, fi.Size(), name)
	}
}
