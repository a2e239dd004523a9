package report

import (
	"image"
	"image/png"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// requirePNG checks that path holds a decodable PNG of at least the given
// size in pixels, and that it is not blank.
func requirePNG(t *testing.T, path string, minW, minH int) image.Image {
	t.Helper()
	f, err := os.Open(path)
	require.NoError(t, err)
	defer f.Close()
	img, err := png.Decode(f)
	require.NoError(t, err)
	b := img.Bounds()
	require.GreaterOrEqual(t, b.Dx(), minW)
	require.GreaterOrEqual(t, b.Dy(), minH)
	first := img.At(b.Min.X, b.Min.Y)
	for y := b.Min.Y; y < b.Max.Y; y += 7 {
		for x := b.Min.X; x < b.Max.X; x += 7 {
			if img.At(x, y) != first {
				return img
			}
		}
	}
	t.Fatalf("%s is a single colour", path)
	return nil
}

// requireNoData checks that plot refuses recs with ErrNoData and writes
// nothing.
func requireNoData(t *testing.T, plot func([]Record, string) error, recs []Record) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "none.png")
	require.ErrorIs(t, plot(recs, path), ErrNoData)
	_, err := os.Stat(path)
	require.ErrorIs(t, err, os.ErrNotExist)
}

func TestPlotGoodput(t *testing.T) {
	t.Parallel() // rasterizing is the slowest part of the package's tests
	path := filepath.Join(t.TempDir(), "goodput.png")
	recs := syntheticRecords()
	for rep := range 3 {
		recs = append(recs,
			rec("loss", "1% loss each way, a rather long case name to wrap", "tcp", rep, goodput(10+float64(rep))),
			rec("loss", "1% loss each way, a rather long case name to wrap", "flightline-udp", rep, goodput(30)),
		)
	}
	require.NoError(t, PlotGoodput(recs, path))
	requirePNG(t, path, 16*96, 7*96)

	requireNoData(t, PlotGoodput, nil)
	requireNoData(t, PlotGoodput, []Record{
		skipped("bulk", "1 stream", "kcp", 0, "n/a"),
		failed("bulk", "1 stream", "tcp", 0, "boom"),
		rec("bulk", "1 stream", "tcp", 1, goodput(math.NaN())),
		rec("ping", "64 B", "tcp", 0, goodput(5)), // not a goodput scenario
	})
}

func TestPlotLatency(t *testing.T) {
	t.Parallel() // rasterizing is the slowest part of the package's tests
	path := filepath.Join(t.TempDir(), "latency.png")
	rng := rand.New(rand.NewPCG(1, 2))
	rtts := func(n int, base float64) []float64 {
		xs := make([]float64, n)
		for i := range xs {
			xs[i] = base * (1 + rng.ExpFloat64()/4)
		}
		return xs
	}
	var recs []Record
	for rep := range 2 {
		for _, c := range []string{"64 B", "1200 B"} {
			for i, peer := range []string{"flightline-udp", "tcp"} {
				r := rec("ping", c, peer, rep, nil)
				r.RTTs = rtts(600, 30*float64(i+1)) // > maxCDFPoints pooled
				recs = append(recs, r)
			}
		}
	}
	// Bad values are dropped, not fatal; a single-valued distribution
	// still has a usable axis (third panel, second row).
	recs[0].RTTs = append(recs[0].RTTs, 0, -1, math.NaN(), math.Inf(1))
	one := rec("ping", "constant", "tcp", 0, nil)
	one.RTTs = []float64{50}
	recs = append(recs, one)

	require.NoError(t, PlotLatency(recs, path))
	requirePNG(t, path, 2*8*96, 2*5*96)

	requireNoData(t, PlotLatency, nil)
	noRTT := rec("ping", "64 B", "tcp", 0, nil)
	noRTT.RTTs = []float64{0, -3}
	failedRTT := failed("ping", "64 B", "tcp", 1, "boom")
	failedRTT.RTTs = []float64{10, 20}
	requireNoData(t, PlotLatency, []Record{noRTT, failedRTT})
}

func TestCDFThinning(t *testing.T) {
	xs := make([]float64, 5000)
	for i := range xs {
		xs[i] = float64(i)
	}
	pts := cdf(xs)
	require.Len(t, pts, maxCDFPoints)
	require.Equal(t, 0.0, pts[0].X)
	require.Equal(t, 1.0/5000, pts[0].Y)
	require.Equal(t, 4999.0, pts[len(pts)-1].X)
	require.Equal(t, 1.0, pts[len(pts)-1].Y)

	small := cdf([]float64{1, 2, 4})
	require.Len(t, small, 3)
	require.Equal(t, 2.0/3, small[1].Y)
}

func abortRecord(rep int, variant string, fullRate float64, shape float64) Record {
	r := rec("abort", "A aborted mid-transfer", "flightline-udp", rep, map[string]float64{MetricAbortFullRate: fullRate})
	r.Seq = rep
	for i := -20; i <= 40; i++ {
		t := time.Duration(i) * time.Millisecond / 2
		g := 100.0
		if i > 0 {
			g = 200 * (1 - math.Exp(-float64(i)/shape))
		}
		r.Series = append(r.Series, Sample{
			T: t, Flight: int64(64<<10 + 1000*i), Cwnd: 128 << 10, Goodput: g, Variant: variant,
		})
	}
	return r
}

func TestPlotAbort(t *testing.T) {
	t.Parallel() // rasterizing is the slowest part of the package's tests
	path := filepath.Join(t.TempDir(), "abort.png")
	var recs []Record
	for rep, fr := range []float64{9, 3, 5} {
		recs = append(recs, abortRecord(rep, "release on", fr, 3), abortRecord(rep, "release off", fr*4, 12))
	}
	require.NoError(t, PlotAbort(recs, path))
	requirePNG(t, path, 12*96, 9*96)

	requireNoData(t, PlotAbort, nil)
	bad := abortRecord(0, "release on", 1, 1)
	bad.Error = "boom"
	requireNoData(t, PlotAbort, []Record{bad, rec("abort", "x", "tcp", 0, nil)})
}

func TestRepresentative(t *testing.T) {
	r := func(seq int, v float64, has bool) *Record {
		x := &Record{Seq: seq, Metrics: map[string]float64{}}
		if has {
			x.Metrics[MetricAbortFullRate] = v
		}
		return x
	}
	require.Equal(t, 2, representative([]*Record{r(1, 9, true), r(2, 3, true), r(3, 1, true)}).Seq)
	// Even count: lower middle. Missing metric ranks last: 1, 9, -, -.
	require.Equal(t, 1, representative([]*Record{r(1, 9, true), r(2, 0, false), r(3, 1, true), r(4, 0, false)}).Seq)
	require.Equal(t, 7, representative([]*Record{r(7, 0, false)}).Seq)
}

func TestLogTicks(t *testing.T) {
	var labelled []float64
	for _, tk := range (logTicks{}).Ticks(35, 260) {
		require.GreaterOrEqual(t, tk.Value, 35.0)
		require.LessOrEqual(t, tk.Value, 260.0)
		if tk.Label != "" {
			labelled = append(labelled, tk.Value)
		}
	}
	require.Equal(t, []float64{50, 100, 200}, labelled)
	require.Empty(t, (logTicks{}).Ticks(0, 10))
	require.Empty(t, (logTicks{}).Ticks(1, math.Inf(1)))
}

func TestWrap(t *testing.T) {
	require.Equal(t, "1 stream,\npinned,\noffloads off", wrap("1 stream, pinned, offloads off", 12))
	require.Equal(t, "averyveryverylongword\nx", wrap("averyveryverylongword x", 5))
	require.Equal(t, "", wrap("   ", 5))
}

func TestLinearTicks(t *testing.T) {
	var got []string
	for _, tk := range (linearTicks{n: 5}).Ticks(0, 287) {
		got = append(got, tk.Label)
	}
	require.Equal(t, []string{"0", "50", "100", "150", "200", "250"}, got)
	got = nil
	for _, tk := range (linearTicks{n: 4}).Ticks(0.05, 1) {
		got = append(got, tk.Label)
	}
	require.Equal(t, []string{"0.2", "0.4", "0.6", "0.8", "1.0"}, got)
	require.Empty(t, (linearTicks{n: 4}).Ticks(1, 1))
	require.Empty(t, (linearTicks{n: 4}).Ticks(math.NaN(), 1))
}

func TestPlotGoodputVsLoss(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "goodput_vs_loss.png")
	var recs []Record
	for _, sc := range []string{"loss", "wan"} {
		for i, l := range []string{"0%", "1%", "5%"} {
			name := "200 Mbit/s, 20 ms RTT, " + l + " loss both ways"
			recs = append(recs,
				rec(sc, name, "flightline-bbr", 0, goodput(20-float64(i))),
				rec(sc, name, "tcp-cubic", 0, goodput(20/math.Pow(10, float64(i)))))
		}
	}
	require.NoError(t, PlotGoodputVsLoss(recs, path))
	requirePNG(t, path, 14*96, 5*96)

	requireNoData(t, PlotGoodputVsLoss, nil)
	requireNoData(t, PlotGoodputVsLoss, []Record{
		rec("bulk", "1 stream", "tcp", 0, goodput(5)),                   // not a loss scenario
		rec("wan", "no loss percentage here", "tcp", 0, goodput(5)),     // nothing to place on the x axis
		rec("loss", "1% loss both ways", "tcp", 0, goodput(math.NaN())), // no goodput
	})
}

func TestPlotCC(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "cc.png")
	r := rec("wan", "200 Mbit/s, 20 ms RTT, 1% loss both ways", "flightline-bbr", 0, goodput(20))
	for i := range 100 {
		r.CC = append(r.CC, CCSample{T: time.Duration(i) * 50 * time.Millisecond, Delivered: uint64(i) * 1e6,
			PacingRate: 25e6, Bandwidth: 25e6, Cwnd: 1e6, Flight: int64(i%10) * 1e5, SRTT: 20 * time.Millisecond, State: "probe_bw_cruise"})
	}
	require.NoError(t, PlotCC([]Record{rec("wan", "x", "tcp", 0, goodput(1)), r}, path))
	requirePNG(t, path, 12*96, 10*96)
	requireNoData(t, PlotCC, []Record{rec("wan", "x", "tcp", 0, goodput(1))})
}
