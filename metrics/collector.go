// Package metrics exports flightline endpoint and connection statistics in
// the Prometheus exposition format.
//
// A Collector reads the Stats snapshots the transport keeps anyway
// (transport.Endpoint.Stats, transport.Conn.Stats, the datapath's
// link.Caps.Counters) when it is scraped: nothing is added to the packet
// path, and a process nobody scrapes pays nothing.
//
// Connection counters are summed per endpoint into flightline_conn_*
// families: the live connections' Stats plus the final counters of every
// connection the endpoint already tore down (transport.ClosedConnStats),
// read together by Endpoint.ConnSnapshot. So the sums count every
// connection, also one that lived between two scrapes, and do not go
// backwards when one closes (a Prometheus counter that decreases reads as a
// reset). The collector also never lets an exported counter decrease: a
// closing connection's last few packets can land after its final counters
// were read, and a closed AF_XDP link reports zeros.
//
// With Config.PerConnection every live connection also gets its own
// flightline_perconn_* series labelled by its connection ID. That is one
// series set per connection: use it for a few long-lived connections, not
// for a server with thousands of peers.
package metrics

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"sync"

	"github.com/flightline/flightline/transport"
	"github.com/prometheus/client_golang/prometheus"
)

// Config configures a Collector. The zero value is usable.
type Config struct {
	// PerConnection adds flightline_perconn_* series for every live
	// connection, labelled endpoint and conn (the local connection ID in
	// hex). Default off: each connection adds about 45 series.
	PerConnection bool
	// RTTBuckets are the upper bounds, in seconds, of the smoothed-RTT
	// histogram. Default: 25 µs doubling to about 13 s (20 buckets).
	RTTBuckets []float64
}

// DefaultRTTBuckets spans loopback (tens of µs) to satellite and
// pathological paths (seconds).
var DefaultRTTBuckets = prometheus.ExponentialBuckets(25e-6, 2, 20)

// Collector is a prometheus.Collector over any number of named endpoints.
// Register it with a prometheus.Registerer, then Add endpoints (before or
// after registering).
type Collector struct {
	cfg Config

	// mu serialises scrapes (they update the last exported counter
	// values) and guards eps.
	mu  sync.Mutex
	eps map[string]*endpointState

	// rtt is sampled at scrape time: one observation of each live
	// connection's smoothed RTT per scrape.
	rtt *prometheus.HistogramVec

	// Descriptors, built once.
	aggCounter, aggGauge []*prometheus.Desc // parallel to connCounters, connGauges
	connCounter          []*prometheus.Desc // parallel to connCounters
	connGauge            []*prometheus.Desc // parallel to connGauges then perConnGauges
	connCongestion       *prometheus.Desc
	conns, connsClosed   *prometheus.Desc
	ep                   []*prometheus.Desc // parallel to epCounters
	linkInfo             *prometheus.Desc
	linkCounter          []*prometheus.Desc // parallel to linkCounters
	linkGauge            []*prometheus.Desc // parallel to linkGauges
	all                  descs
}

// endpointState is what the collector remembers of one endpoint between
// scrapes.
type endpointState struct {
	name string
	ep   *transport.Endpoint
	// lastConn and lastLink are the sums last exported, parallel to
	// connCounters and linkCounters: exported counters never decrease.
	lastConn, lastLink []uint64
}

// monotonic returns max(v, *last) and remembers it.
func monotonic(last *uint64, v uint64) uint64 {
	*last = max(*last, v)
	return *last
}

// New returns a Collector with no endpoints.
func New(cfg Config) *Collector {
	if cfg.RTTBuckets == nil {
		cfg.RTTBuckets = DefaultRTTBuckets
	}
	c := &Collector{cfg: cfg, eps: make(map[string]*endpointState)}
	c.rtt = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Namespace: namespace,
		Name:      "conn_smoothed_rtt_seconds",
		Help:      "Smoothed RTT of each live connection, sampled once per connection per scrape (not per RTT sample).",
		Buckets:   cfg.RTTBuckets,
	}, []string{"endpoint"})

	d := &c.all
	ep := []string{"endpoint"}
	epConn := []string{"endpoint", "conn"}
	c.conns = d.add(namespace+"_conns", "Connections that completed their handshake and are not yet torn down.", ep...)
	c.connsClosed = d.add(namespace+"_conns_closed_total", "Connections torn down (their counters stay in the flightline_conn_* sums).", ep...)
	// Members of a cause family after the first carry no help: add
	// returns the family's Desc, built with the first member's.
	for _, f := range connCounters {
		c.aggCounter = append(c.aggCounter, d.add(aggPrefix+f.name, f.help+" Summed over the endpoint's connections, closed ones included.", withCause(ep, f.cause)...))
	}
	for _, f := range connGauges {
		c.aggGauge = append(c.aggGauge, d.add(aggPrefix+f.name, f.help+" Summed over the endpoint's live connections.", ep...))
	}
	if cfg.PerConnection {
		for _, f := range connCounters {
			c.connCounter = append(c.connCounter, d.add(connPrefix+f.name, f.help+" Per connection.", withCause(epConn, f.cause)...))
		}
		for _, f := range slices.Concat(connGauges, perConnGauges) {
			c.connGauge = append(c.connGauge, d.add(connPrefix+f.name, f.help+" Per connection.", epConn...))
		}
		c.connCongestion = d.add(connPrefix+"congestion_info", "Always 1; labels name the congestion controller and its state (BBR's, e.g. probe_bw_cruise; empty for others).",
			"endpoint", "conn", "controller", "state")
	}
	for _, f := range epCounters {
		labels := ep
		if f.label != "" {
			labels = append(ep[:1:1], f.label)
		}
		c.ep = append(c.ep, d.add(namespace+"_"+f.name, f.help, labels...))
	}
	c.linkInfo = d.add(namespace+"_link_info", "Always 1; labels name the endpoint's datapath and the offloads in use.",
		"endpoint", "datapath", "gso", "gro", "zerocopy", "queues")
	for _, f := range linkCounters {
		c.linkCounter = append(c.linkCounter, d.add(namespace+"_"+f.name, f.help, withCause(ep, f.cause)...))
	}
	for _, f := range linkGauges {
		c.linkGauge = append(c.linkGauge, d.add(namespace+"_"+f.name, f.help, ep...))
	}
	return c
}

// Add exports ep under the label endpoint=name. Names must be unique and
// non-empty. The collector holds ep until Remove.
func (c *Collector) Add(name string, ep *transport.Endpoint) error {
	if name == "" {
		return errors.New("metrics: empty endpoint name")
	}
	if ep == nil {
		return errors.New("metrics: nil endpoint")
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, dup := c.eps[name]; dup {
		return fmt.Errorf("metrics: endpoint %q already added", name)
	}
	c.eps[name] = &endpointState{name: name, ep: ep, lastConn: make([]uint64, len(connCounters)), lastLink: make([]uint64, len(linkCounters))}
	return nil
}

// Remove stops exporting the endpoint added as name; its series vanish from
// the next scrape.
func (c *Collector) Remove(name string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.eps, name)
	c.rtt.DeleteLabelValues(name)
}

// Describe implements prometheus.Collector.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range c.all.order {
		ch <- d
	}
	c.rtt.Describe(ch)
}

// Collect implements prometheus.Collector: it reads every endpoint's and
// connection's Stats now.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	c.mu.Lock()
	defer c.mu.Unlock()
	names := make([]string, 0, len(c.eps))
	for name := range c.eps {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		c.collectEndpoint(ch, c.eps[name])
	}
	c.rtt.Collect(ch)
}

func (c *Collector) collectEndpoint(ch chan<- prometheus.Metric, st *endpointState) {
	name := st.name
	es := st.ep.Stats()
	for i, f := range epCounters {
		labels := []string{name}
		if f.label != "" {
			labels = append(labels, f.value)
		}
		ch <- prometheus.MustNewConstMetric(c.ep[i], prometheus.CounterValue, float64(f.get(&es)), labels...)
	}

	caps := st.ep.Link().Caps()
	ch <- prometheus.MustNewConstMetric(c.linkInfo, prometheus.GaugeValue, 1, name, caps.Datapath,
		strconv.FormatBool(caps.GSO), strconv.FormatBool(caps.GRO), strconv.FormatBool(caps.ZeroCopy), strconv.Itoa(caps.Queues))
	for i, f := range linkCounters {
		ch <- prometheus.MustNewConstMetric(c.linkCounter[i], prometheus.CounterValue, float64(monotonic(&st.lastLink[i], f.get(&caps.Counters))), causeValues([]string{name}, f.cause)...)
	}
	for i, f := range linkGauges {
		ch <- prometheus.MustNewConstMetric(c.linkGauge[i], prometheus.GaugeValue, f.get(&caps.Counters), name)
	}

	live, closed := st.ep.ConnSnapshot()
	sums := make([]uint64, len(connCounters))
	for i, f := range connCounters {
		sums[i] = f.get(&closed.Stats)
	}
	gauges := make([]float64, len(connGauges))
	rtt := c.rtt.WithLabelValues(name)
	for _, conn := range live {
		s := conn.Stats()
		for i, f := range connCounters {
			sums[i] += f.get(&s)
		}
		for i, f := range connGauges {
			gauges[i] += f.get(&s)
		}
		if s.SmoothedRTT > 0 {
			rtt.Observe(s.SmoothedRTT.Seconds())
		}
		if c.cfg.PerConnection {
			c.collectConn(ch, name, conn, &s)
		}
	}

	ch <- prometheus.MustNewConstMetric(c.conns, prometheus.GaugeValue, float64(len(live)), name)
	ch <- prometheus.MustNewConstMetric(c.connsClosed, prometheus.CounterValue, float64(closed.Conns), name)
	for i, f := range connCounters {
		ch <- prometheus.MustNewConstMetric(c.aggCounter[i], prometheus.CounterValue, float64(monotonic(&st.lastConn[i], sums[i])), causeValues([]string{name}, f.cause)...)
	}
	for i := range connGauges {
		ch <- prometheus.MustNewConstMetric(c.aggGauge[i], prometheus.GaugeValue, gauges[i], name)
	}
}

// collectConn emits one connection's own series.
func (c *Collector) collectConn(ch chan<- prometheus.Metric, name string, conn *transport.Conn, s *transport.Stats) {
	id := fmt.Sprintf("%016x", conn.LocalID())
	for i, f := range connCounters {
		ch <- prometheus.MustNewConstMetric(c.connCounter[i], prometheus.CounterValue, float64(f.get(s)), causeValues([]string{name, id}, f.cause)...)
	}
	for i, f := range slices.Concat(connGauges, perConnGauges) {
		ch <- prometheus.MustNewConstMetric(c.connGauge[i], prometheus.GaugeValue, f.get(s), name, id)
	}
	ch <- prometheus.MustNewConstMetric(c.connCongestion, prometheus.GaugeValue, 1, name, id, s.Controller, s.CongestionState)
}
