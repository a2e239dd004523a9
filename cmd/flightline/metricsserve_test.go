package main

import (
	"context"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/stretchr/testify/require"

	"github.com/flightline/flightline/transport"
)

// httpGet fetches url and returns status and body.
func httpGet(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, string(b)
}

// scrapeMetrics GETs /metrics and parses it with the Prometheus text parser.
func scrapeMetrics(t *testing.T, addr net.Addr) map[string]*dto.MetricFamily {
	t.Helper()
	code, body := httpGet(t, "http://"+addr.String()+"/metrics")
	require.Equal(t, http.StatusOK, code, body)
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(strings.NewReader(body))
	require.NoError(t, err)
	return fams
}

// metricValue returns the one value of family name whose labels include
// want (counter or gauge).
func metricValue(t *testing.T, fams map[string]*dto.MetricFamily, name string, want ...string) float64 {
	t.Helper()
	fam := fams[name]
	require.NotNil(t, fam, "family %s missing", name)
	var vals []float64
	for _, m := range fam.GetMetric() {
		have := map[string]string{}
		for _, lp := range m.GetLabel() {
			have[lp.GetName()] = lp.GetValue()
		}
		ok := true
		for i := 0; i+1 < len(want); i += 2 {
			ok = ok && have[want[i]] == want[i+1]
		}
		if ok {
			vals = append(vals, m.GetCounter().GetValue()+m.GetGauge().GetValue())
		}
	}
	require.Len(t, vals, 1, "%s%v", name, want)
	return vals[0]
}

// listen --metrics and send --metrics serve /metrics (parsed here) and
// /debug/pprof/ on loopback for as long as they run.
func TestMetricsFlagServes(t *testing.T) {
	dir := t.TempDir()
	in, out := filepath.Join(dir, "in"), filepath.Join(dir, "out")
	require.NoError(t, os.Mkdir(in, 0o755))
	require.NoError(t, os.Mkdir(out, 0o755))
	keyPath, pub := writeKey(t, dir)
	file := filepath.Join(in, "f.bin")
	data := make([]byte, 1<<20)
	rand.NewChaCha8([32]byte{15}).Read(data)
	require.NoError(t, os.WriteFile(file, data, 0o644))

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	lctx, stopListen := context.WithCancel(ctx)
	ready := make(chan netip.AddrPort, 1)
	metricsAt := make(chan net.Addr, 1)
	var lout, lerr syncBuffer
	le := &env{stdout: &lout, stderr: &lerr,
		ready:        func(a netip.AddrPort, _ transport.PublicKey) { ready <- a },
		metricsReady: func(a net.Addr) { metricsAt <- a }}
	done := make(chan int, 1)
	go func() {
		done <- run(lctx, []string{"listen", "--addr", "127.0.0.1:0", "--key", keyPath, "--dir", out,
			"--datapath", "udp", "--allow-any", "--metrics", "127.0.0.1:0", "--metrics-per-conn"}, le)
	}()
	defer func() { stopListen(); <-done }()
	var maddr net.Addr
	select {
	case maddr = <-metricsAt:
	case code := <-done:
		t.Fatalf("listen exited with %d: %s", code, lerr.String())
	}
	addr := <-ready
	require.True(t, maddr.(*net.TCPAddr).IP.IsLoopback())
	require.Contains(t, lerr.String(), "metrics on http://"+maddr.String()+"/metrics")

	// Before any connection: endpoint series exist, no handshake yet.
	fams := scrapeMetrics(t, maddr)
	require.Zero(t, metricValue(t, fams, "flightline_handshakes_total", "endpoint", "listen", "outcome", "completed"))
	require.Equal(t, 1.0, metricValue(t, fams, "flightline_link_info", "endpoint", "listen", "datapath", "udp"))
	require.Contains(t, fams, "go_goroutines", "Go runtime collector registered")

	// send --metrics: scraped while it runs (its server closes on exit).
	var sendFams map[string]*dto.MetricFamily
	var sendPprof int
	var sout, serr syncBuffer
	se := &env{stdout: &sout, stderr: &serr, metricsReady: func(a net.Addr) {
		sendFams = scrapeMetrics(t, a)
		sendPprof, _ = httpGet(t, "http://"+a.String()+"/debug/pprof/")
	}}
	code := run(ctx, []string{"send", "--to", addr.String(), "--peer", pub.String(), "--datapath", "udp",
		"--metrics", "127.0.0.1:0", file}, se)
	require.Equal(t, 0, code, serr.String())
	require.NotNil(t, sendFams)
	require.Equal(t, 0.0, metricValue(t, sendFams, "flightline_conns", "endpoint", "send"))
	require.Equal(t, http.StatusOK, sendPprof)

	// The listener's sums include the sender's connection, live or closed.
	fams = scrapeMetrics(t, maddr)
	require.Equal(t, 1.0, metricValue(t, fams, "flightline_handshakes_total", "endpoint", "listen", "outcome", "completed"))
	require.GreaterOrEqual(t, metricValue(t, fams, "flightline_conn_received_bytes_total", "endpoint", "listen"), float64(len(data)))
	require.GreaterOrEqual(t, metricValue(t, fams, "flightline_conn_streams_accepted_total", "endpoint", "listen"), 1.0)

	code, body := httpGet(t, "http://"+maddr.String()+"/debug/pprof/")
	require.Equal(t, http.StatusOK, code)
	require.Contains(t, body, "goroutine")
	code, _ = httpGet(t, "http://"+maddr.String()+"/debug/pprof/cmdline")
	require.Equal(t, http.StatusOK, code)
	code, _ = httpGet(t, "http://"+maddr.String()+"/nope")
	require.Equal(t, http.StatusNotFound, code)

	// Stopping listen stops its metrics server.
	stopListen()
	require.Equal(t, 0, <-done, lerr.String())
	done <- 0 // for the deferred wait
	_, err := net.DialTimeout("tcp", maddr.String(), time.Second)
	require.Error(t, err, "metrics server still listening after listen exited")
}

// A --metrics address that cannot be served fails the command with one
// line naming the flag.
func TestMetricsFlagBadAddress(t *testing.T) {
	dir := t.TempDir()
	keyPath, _ := writeKey(t, dir)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	code, _, errs := runCmd(t, ctx, "listen", "--addr", "127.0.0.1:0", "--key", keyPath, "--dir", dir,
		"--datapath", "udp", "--allow-any", "--metrics", "127.0.0.1:notaport")
	require.Equal(t, 1, code)
	require.Contains(t, errs, "flightline listen: --metrics: ")
}
