package metrics_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/stretchr/testify/require"

	"github.com/flightline/flightline/metrics"
	"github.com/flightline/flightline/transport"
	"github.com/flightline/flightline/transport/link"
	"github.com/flightline/flightline/transport/memlink"
)

// xdpCounters stands in for an AF_XDP link's ring counters: distinct values
// so a field exported under the wrong name is caught.
var xdpCounters = link.Counters{
	RxDropped: 1, RxRingFull: 2, RxFillRingEmpty: 3, RxInvalidDescs: 4, TxInvalidDescs: 5,
	TxRingEmpty: 6, TxFullWaits: 7, TxFullErrors: 8, NeighbourDrops: 9,
	FillSize: 4096, FillQueued: 4000, FillLowWater: 17, TxFrames: 2048, TxInFlight: 33,
}

// ringLink is a memlink end that reports xdpCounters, as an AF_XDP link
// reports its rings.
type ringLink struct{ *memlink.Link }

func (l ringLink) Caps() link.Caps {
	c := l.Link.Caps()
	c.Counters = xdpCounters
	c.Queues = 2
	return c
}

// pair is a listener and a dialer on a lossy, duplicating memlink with one
// connection between them.
type pair struct {
	srvEP, cliEP     *transport.Endpoint
	srvConn, cliConn *transport.Conn
}

func newPair(t testing.TB) *pair {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	a, b := memlink.NewPair(memlink.Config{Seed: 15, AtoB: memlink.Impairment{Loss: 0.03, Duplicate: 0.02}})
	srvKey, err := transport.GenerateKey()
	require.NoError(t, err)
	cliKey, err := transport.GenerateKey()
	require.NoError(t, err)
	// A small KeyUpdateInterval makes key updates happen in a short run.
	srv, err := transport.NewEndpoint(ringLink{b}, &transport.Config{PrivateKey: srvKey, KeyUpdateInterval: 64}, true)
	require.NoError(t, err)
	t.Cleanup(func() { srv.Close() })
	cli, err := transport.NewEndpoint(a, &transport.Config{PrivateKey: cliKey, KeyUpdateInterval: 64}, false)
	require.NoError(t, err)
	t.Cleanup(func() { cli.Close() })

	p := &pair{srvEP: srv, cliEP: cli}
	accepted := make(chan *transport.Conn, 1)
	go func() {
		c, err := srv.Accept(ctx)
		if err == nil {
			accepted <- c
		}
		close(accepted)
	}()
	p.cliConn, err = cli.Dial(ctx, b.LocalAddr(), srvKey.Public())
	require.NoError(t, err)

	// Move 512 KiB client -> server on one stream and read it all.
	const size = 512 << 10
	payload := bytes.Repeat([]byte("flightline metrics "), size/19+1)[:size]
	s, err := p.cliConn.OpenStream()
	require.NoError(t, err)
	werr := make(chan error, 1)
	go func() {
		_, err := s.Write(payload)
		if err == nil {
			err = s.Close()
		}
		werr <- err
	}()
	var ok bool
	select {
	case p.srvConn, ok = <-accepted:
		require.True(t, ok, "accept failed")
	case <-ctx.Done():
		t.Fatal("accept: timeout")
	}
	rs, err := p.srvConn.AcceptStream(ctx)
	require.NoError(t, err)
	got, err := io.ReadAll(rs)
	require.NoError(t, err)
	require.Equal(t, size, len(got))
	require.NoError(t, <-werr)
	return p
}

// scrape GETs /metrics over HTTP and parses it with the Prometheus text
// parser.
func scrape(t testing.TB, url string) map[string]*dto.MetricFamily {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	require.NoError(t, err)
	req.Header.Set("Accept", "text/plain; version=0.0.4")
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(resp.Body)
		t.Fatalf("GET %s: %s: %s", url, resp.Status, body)
	}
	require.True(t, strings.HasPrefix(resp.Header.Get("Content-Type"), "text/plain"), resp.Header.Get("Content-Type"))
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(resp.Body)
	require.NoError(t, err)
	return fams
}

// value returns the value of the series of family name whose labels include
// want, failing when there is not exactly one.
func value(t *testing.T, fams map[string]*dto.MetricFamily, name string, want map[string]string) float64 {
	t.Helper()
	fam, ok := fams[name]
	require.True(t, ok, "family %s missing", name)
	var found []*dto.Metric
next:
	for _, m := range fam.GetMetric() {
		for k, v := range want {
			match := false
			for _, lp := range m.GetLabel() {
				if lp.GetName() == k && lp.GetValue() == v {
					match = true
				}
			}
			if !match {
				continue next
			}
		}
		found = append(found, m)
	}
	require.Len(t, found, 1, "%s%v", name, want)
	m := found[0]
	switch fam.GetType() {
	case dto.MetricType_COUNTER:
		return m.GetCounter().GetValue()
	case dto.MetricType_GAUGE:
		return m.GetGauge().GetValue()
	case dto.MetricType_HISTOGRAM:
		return float64(m.GetHistogram().GetSampleCount())
	}
	t.Fatalf("%s: unexpected type %v", name, fam.GetType())
	return 0
}

func labels(kv ...string) map[string]string {
	m := map[string]string{}
	for i := 0; i+1 < len(kv); i += 2 {
		m[kv[i]] = kv[i+1]
	}
	return m
}

// between asserts lo <= v <= hi (counters read before and after a scrape
// bound what the scrape saw: the connections are live).
func between(t *testing.T, what string, v float64, lo, hi uint64) {
	t.Helper()
	require.True(t, float64(lo) <= v && v <= float64(hi), "%s = %v, want in [%d, %d]", what, v, lo, hi)
}

// connCounter maps exported counter names to the Stats fields they must
// equal. It is the test's own copy, so a mapping error in the package shows.
func connCounterWant(s transport.Stats) map[string]uint64 {
	return map[string]uint64{
		"packets_sent_total":                       s.PacketsSent,
		"sent_bytes_total":                         s.BytesSent,
		"packets_received_total":                   s.PacketsReceived,
		"received_bytes_total":                     s.BytesReceived,
		"acked_bytes_total":                        s.BytesAcked,
		"delivered_bytes_total":                    s.BytesDelivered,
		"declared_lost_bytes_total":                s.BytesDeclaredLost,
		"packets_lost_total":                       s.PacketsLost,
		"packets_retransmitted_total":              s.PacketsRetransmitted,
		"packets_abandoned_total":                  s.PacketsAbandoned,
		"tail_loss_probes_total":                   s.TailLossProbes,
		"rtos_total":                               s.RTOs,
		"dropped_packets_total/duplicate":          s.DroppedDuplicate,
		"dropped_packets_total/undecryptable":      s.DroppedUndecryptable,
		"dropped_packets_total/malformed":          s.DroppedMalformed,
		"dropped_packets_total/message_queue_full": s.DroppedMessageQueue,
		"duplicate_stream_bytes_total":             s.DuplicateStreamBytes,
		"resends_skipped_total":                    s.ResendsSkipped,
		"send_errors_total":                        s.SendErrors,
		"streams_opened_total":                     s.StreamsOpened,
		"streams_accepted_total":                   s.StreamsAccepted,
		"window_wait_aborts_total":                 s.WindowWaitAborts,
		"abort_released_bytes_total":               s.AbortReleasedBytes,
		"flight_underflows_total":                  s.FlightUnderflows,
		"key_updates_total":                        s.KeyUpdates,
		"key_updates_initiated_total":              s.KeyUpdatesInitiated,
		"peer_key_updates_total":                   s.PeerKeyUpdates,
		"previous_key_packets_total":               s.PreviousKeyPackets,
		"auth_failures_total":                      s.AuthFailures,
	}
}

func epCounterWant(s transport.EndpointStats) map[string]uint64 {
	return map[string]uint64{
		"endpoint_dropped_datagrams_total/cause=malformed":     s.DroppedMalformed,
		"endpoint_dropped_datagrams_total/cause=unknown_conn":  s.DroppedUnknownConn,
		"endpoint_dropped_datagrams_total/cause=not_listening": s.DroppedNotListening,
		"handshakes_total/outcome=completed":                   s.Handshakes,
		"handshakes_total/outcome=rejected":                    s.DroppedHandshake,
		"handshakes_total/outcome=refused":                     s.ConnectionsRefused,
		"handshakes_total/outcome=rate_limited":                s.HandshakesRateLimited,
		"handshakes_total/outcome=queue_full":                  s.HandshakeQueueDrops,
		"handshakes_total/outcome=accept_queue_full":           s.AcceptQueueFull,
		"handshakes_total/outcome=pending_expired":             s.PendingExpired,
		"handshakes_malformed_payload_total":                   s.HandshakesMalformedPayload,
		"handshake_cookies_sent_total":                         s.CookiesSent,
		"handshake_initiations_processed_total":                s.InitiationsProcessed,
	}
}

// splitKey turns "name/cause" or "name/label=value" into a family name and
// its extra label.
func splitKey(key string) (string, map[string]string) {
	name, rest, ok := strings.Cut(key, "/")
	if !ok {
		return name, nil
	}
	if k, v, ok := strings.Cut(rest, "="); ok {
		return name, map[string]string{k: v}
	}
	return name, map[string]string{"cause": rest}
}

func with(base map[string]string, extra map[string]string) map[string]string {
	m := map[string]string{}
	for k, v := range base {
		m[k] = v
	}
	for k, v := range extra {
		m[k] = v
	}
	return m
}

// checkConn asserts every connection counter of the scrape lies between the
// Stats read before and after it, in the aggregate family (plus the final
// counters of closed connections) and, if conn is set, in conn's own
// series.
func checkConn(t *testing.T, fams map[string]*dto.MetricFamily, ep string, closed []transport.Stats, before, after transport.Stats, conn *transport.Conn) {
	t.Helper()
	lo, hi := connCounterWant(before), connCounterWant(after)
	for key, l := range lo {
		name, extra := splitKey(key)
		var sumClosed uint64
		for _, s := range closed {
			sumClosed += connCounterWant(s)[key]
		}
		v := value(t, fams, "flightline_conn_"+name, with(labels("endpoint", ep), extra))
		between(t, ep+" flightline_conn_"+key, v, l+sumClosed, hi[key]+sumClosed)
		if conn != nil {
			id := fmt.Sprintf("%016x", conn.LocalID())
			v := value(t, fams, "flightline_perconn_"+name, with(labels("endpoint", ep, "conn", id), extra))
			between(t, ep+" flightline_perconn_"+key, v, l, hi[key])
		}
	}
}

func TestScrapeMatchesStats(t *testing.T) {
	p := newPair(t)

	c := metrics.New(metrics.Config{PerConnection: true})
	require.NoError(t, c.Add("server", p.srvEP))
	require.NoError(t, c.Add("client", p.cliEP))
	require.Error(t, c.Add("client", p.cliEP), "duplicate name")
	require.Error(t, c.Add("", p.cliEP), "empty name")
	// The pedantic registry checks that Collect only sends what Describe
	// announced, with consistent label names and help.
	reg := prometheus.NewPedanticRegistry()
	require.NoError(t, reg.Register(c))
	srv := httptest.NewServer(promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	defer srv.Close()
	url := srv.URL + "/metrics"

	srvBefore, cliBefore := p.srvConn.Stats(), p.cliConn.Stats()
	srvEPBefore, cliEPBefore := p.srvEP.Stats(), p.cliEP.Stats()
	fams := scrape(t, url)
	srvAfter, cliAfter := p.srvConn.Stats(), p.cliConn.Stats()
	srvEPAfter, cliEPAfter := p.srvEP.Stats(), p.cliEP.Stats()

	// The transfer really moved data through loss and key updates, so
	// the counters compared below are not all zero.
	require.GreaterOrEqual(t, cliBefore.BytesSent, uint64(512<<10))
	require.NotZero(t, cliBefore.PacketsLost, "3%% loss should have lost packets")
	require.NotZero(t, cliBefore.PacketsRetransmitted)
	require.NotZero(t, cliBefore.KeyUpdates)
	require.NotZero(t, srvBefore.PeerKeyUpdates)
	require.NotZero(t, srvBefore.DroppedDuplicate+srvBefore.DuplicateStreamBytes)

	checkConn(t, fams, "server", nil, srvBefore, srvAfter, p.srvConn)
	checkConn(t, fams, "client", nil, cliBefore, cliAfter, p.cliConn)
	for _, e := range []struct {
		name          string
		before, after transport.EndpointStats
	}{{"server", srvEPBefore, srvEPAfter}, {"client", cliEPBefore, cliEPAfter}} {
		lo, hi := epCounterWant(e.before), epCounterWant(e.after)
		for key, l := range lo {
			name, extra := splitKey(key)
			v := value(t, fams, "flightline_"+name, with(labels("endpoint", e.name), extra))
			between(t, e.name+" "+key, v, l, hi[key])
		}
		require.Equal(t, 1.0, value(t, fams, "flightline_conns", labels("endpoint", e.name)))
		require.Equal(t, 1.0, value(t, fams, "flightline_conn_smoothed_rtt_seconds", labels("endpoint", e.name)),
			"one RTT observation per live connection per scrape")
	}
	require.Equal(t, 1.0, value(t, fams, "flightline_handshakes_total", labels("endpoint", "server", "outcome", "completed")))

	// Gauges: between the two snapshots (the transfer is over, so they
	// are settled or settling).
	for _, g := range []struct {
		name string
		get  func(transport.Stats) float64
	}{
		{"flight_size_bytes", func(s transport.Stats) float64 { return float64(s.FlightSize) }},
		{"cwnd_bytes", func(s transport.Stats) float64 { return float64(s.CongestionWindow) }},
		{"pacing_rate_bytes_per_second", func(s transport.Stats) float64 { return s.PacingRate }},
		{"tracked_packets", func(s transport.Stats) float64 { return float64(s.TrackedPackets) }},
		{"bandwidth_estimate_bytes_per_second", func(s transport.Stats) float64 { return s.BandwidthEstimate }},
	} {
		v := value(t, fams, "flightline_conn_"+g.name, labels("endpoint", "client"))
		lo, hi := min(g.get(cliBefore), g.get(cliAfter)), max(g.get(cliBefore), g.get(cliAfter))
		require.True(t, lo <= v && v <= hi, "client %s = %v, want in [%v, %v]", g.name, v, lo, hi)
	}
	require.NotZero(t, value(t, fams, "flightline_conn_cwnd_bytes", labels("endpoint", "client")))
	id := fmt.Sprintf("%016x", p.cliConn.LocalID())
	// The controller's state (BBR's) as a label: the one before or after
	// the scrape.
	states := labelValues(filterLabel(fams["flightline_perconn_congestion_info"], "conn", id), "state")
	require.Len(t, states, 1)
	require.Contains(t, []string{cliBefore.CongestionState, cliAfter.CongestionState}, states[0])
	require.Equal(t, []string{cliAfter.Controller}, labelValues(filterLabel(fams["flightline_perconn_congestion_info"], "conn", id), "controller"))
	srtt := value(t, fams, "flightline_perconn_smoothed_rtt_seconds", labels("endpoint", "client", "conn", id))
	require.True(t, srtt > 0 && srtt >= min(cliBefore.SmoothedRTT, cliAfter.SmoothedRTT).Seconds() &&
		srtt <= max(cliBefore.SmoothedRTT, cliAfter.SmoothedRTT).Seconds(), "srtt %v", srtt)

	// Datapath counters: the server's link reports xdpCounters, the
	// client's none.
	for cause, want := range map[string]uint64{
		"rx_dropped": 1, "rx_ring_full": 2, "rx_fill_ring_empty": 3, "rx_invalid_descs": 4,
		"tx_invalid_descs": 5, "tx_full_errors": 8, "neighbour_unresolved": 9,
	} {
		require.Equal(t, float64(want), value(t, fams, "flightline_link_dropped_total", labels("endpoint", "server", "cause", cause)), cause)
		require.Zero(t, value(t, fams, "flightline_link_dropped_total", labels("endpoint", "client", "cause", cause)), cause)
	}
	for name, want := range map[string]float64{
		"flightline_link_tx_ring_empty_total": 6, "flightline_link_tx_full_waits_total": 7,
		"flightline_link_fill_frames": 4096, "flightline_link_fill_queued_frames": 4000,
		"flightline_link_fill_low_water_frames": 17, "flightline_link_tx_frames": 2048, "flightline_link_tx_in_flight_frames": 33,
	} {
		require.Equal(t, want, value(t, fams, name, labels("endpoint", "server")), name)
	}
	require.Equal(t, 1.0, value(t, fams, "flightline_link_info", labels("endpoint", "server", "datapath", "mem", "queues", "2")))

	// A second scrape samples the RTT histogram again.
	fams = scrape(t, url)
	require.Equal(t, 2.0, value(t, fams, "flightline_conn_smoothed_rtt_seconds", labels("endpoint", "client")))

	// Closing the connection must not make the sums go backwards: its
	// final counters stay in flightline_conn_* and its own series go.
	prev := fams
	require.NoError(t, p.cliConn.CloseWithError(0, "test done"))
	require.Empty(t, p.cliEP.Conns(), "CloseWithError returns after teardown")
	final := p.cliConn.Stats()
	fams = scrape(t, url)
	require.Equal(t, 0.0, value(t, fams, "flightline_conns", labels("endpoint", "client")))
	require.Equal(t, 1.0, value(t, fams, "flightline_conns_closed_total", labels("endpoint", "client")))
	require.NotContains(t, seriesConns(fams["flightline_perconn_packets_sent_total"]), id)
	checkConn(t, fams, "client", []transport.Stats{final}, transport.Stats{}, transport.Stats{}, nil)
	for key := range connCounterWant(final) {
		name, extra := splitKey(key)
		l := with(labels("endpoint", "client"), extra)
		require.GreaterOrEqual(t, value(t, fams, "flightline_conn_"+name, l), value(t, prev, "flightline_conn_"+name, l), "%s went backwards", key)
	}

	// A connection that opens and closes between two scrapes is counted
	// too: the endpoint keeps the counters of every connection it tore
	// down.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	srvRead := make(chan error, 1)
	go func() {
		c, err := p.srvEP.Accept(ctx)
		if err == nil {
			var s *transport.Stream
			if s, err = c.AcceptStream(ctx); err == nil {
				_, err = io.Copy(io.Discard, s)
			}
		}
		srvRead <- err
	}()
	second, err := p.cliEP.Dial(ctx, p.srvEP.LocalAddr(), p.srvEP.PublicKey())
	require.NoError(t, err)
	s2, err := second.OpenStream()
	require.NoError(t, err)
	_, err = s2.Write(make([]byte, 20<<10))
	require.NoError(t, err)
	require.NoError(t, s2.Close())
	require.NoError(t, <-srvRead)
	require.NoError(t, second.Close()) // graceful: after our data is acknowledged
	final2 := second.Stats()
	require.NotZero(t, final2.PacketsSent)
	fams = scrape(t, url)
	require.Equal(t, 2.0, value(t, fams, "flightline_conns_closed_total", labels("endpoint", "client")))
	checkConn(t, fams, "client", []transport.Stats{final, final2}, transport.Stats{}, transport.Stats{}, nil)

	c.Remove("client")
	fams = scrape(t, url)
	require.NotContains(t, seriesEndpoints(fams["flightline_conns"]), "client")
	require.Contains(t, seriesEndpoints(fams["flightline_conns"]), "server")
}

func seriesConns(f *dto.MetricFamily) []string     { return labelValues(f, "conn") }
func seriesEndpoints(f *dto.MetricFamily) []string { return labelValues(f, "endpoint") }

func labelValues(f *dto.MetricFamily, name string) []string {
	var out []string
	for _, m := range f.GetMetric() {
		for _, lp := range m.GetLabel() {
			if lp.GetName() == name {
				out = append(out, lp.GetValue())
			}
		}
	}
	return out
}

// Without PerConnection there are no per-connection families at all.
func TestAggregateOnlyByDefault(t *testing.T) {
	p := newPair(t)
	c := metrics.New(metrics.Config{})
	require.NoError(t, c.Add("client", p.cliEP))
	reg := prometheus.NewPedanticRegistry()
	require.NoError(t, reg.Register(c))
	srv := httptest.NewServer(promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	defer srv.Close()
	before := p.cliConn.Stats()
	fams := scrape(t, srv.URL)
	after := p.cliConn.Stats()
	for name := range fams {
		require.False(t, strings.HasPrefix(name, "flightline_perconn_"), name)
	}
	checkConn(t, fams, "client", nil, before, after, nil)
}

// ClosedConnStats sums exactly the uint64 (counter) fields of Stats: the
// closed connection's counters lie between its Stats before the close and
// after it, and the gauges are not summed.
func TestClosedConnStatsSumsCounters(t *testing.T) {
	p := newPair(t)
	before := p.cliConn.Stats()
	require.NoError(t, p.cliConn.CloseWithError(0, "done"))
	after := p.cliConn.Stats()
	live, closed := p.cliEP.ConnSnapshot()
	require.Empty(t, live)
	require.Equal(t, uint64(1), closed.Conns)
	lo, hi, got := connCounterWant(before), connCounterWant(after), connCounterWant(closed.Stats)
	for key, v := range got {
		require.True(t, lo[key] <= v && v <= hi[key], "%s = %d, want in [%d, %d]", key, v, lo[key], hi[key])
	}
	require.NotZero(t, closed.Stats.PacketsSent)
	require.Zero(t, closed.Stats.SmoothedRTT)
	require.Zero(t, closed.Stats.CongestionWindow)
	require.Empty(t, closed.Stats.Datapath)
}

// filterLabel keeps the series of f whose label name has value v.
func filterLabel(f *dto.MetricFamily, name, v string) *dto.MetricFamily {
	out := &dto.MetricFamily{Name: f.Name, Type: f.Type}
	for _, m := range f.GetMetric() {
		for _, lp := range m.GetLabel() {
			if lp.GetName() == name && lp.GetValue() == v {
				out.Metric = append(out.Metric, m)
			}
		}
	}
	return out
}

// BenchmarkGather measures one scrape's collection (Gather, without HTTP)
// of two endpoints with one live connection each, with and without the
// per-connection series.
func BenchmarkGather(b *testing.B) {
	for _, perConn := range []bool{false, true} {
		b.Run(fmt.Sprintf("perconn=%v", perConn), func(b *testing.B) {
			p := newPair(b)
			c := metrics.New(metrics.Config{PerConnection: perConn})
			require.NoError(b, c.Add("server", p.srvEP))
			require.NoError(b, c.Add("client", p.cliEP))
			reg := prometheus.NewRegistry()
			require.NoError(b, reg.Register(c))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := reg.Gather(); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
