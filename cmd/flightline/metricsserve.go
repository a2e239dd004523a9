package main

import (
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"net/http/pprof"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/flightline/flightline/metrics"
	"github.com/flightline/flightline/transport"
)

// metricsFlags are --metrics and --metrics-per-conn of listen and send.
type metricsFlags struct {
	addr    string
	perConn bool
}

func (m *metricsFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&m.addr, "metrics", "", "serve Prometheus metrics at /metrics and Go profiles at /debug/pprof/ on `IP:PORT` (no authentication: bind it to loopback or a management network)")
	fs.BoolVar(&m.perConn, "metrics-per-conn", false, "with --metrics, also export every connection's own series (one set per connection)")
}

// start serves the metrics of ep, exported as endpoint=name, when --metrics
// was given; stop shuts the server down. Without --metrics both are no-ops.
func (m *metricsFlags) start(e *env, name string, ep *transport.Endpoint) (stop func() error, err error) {
	if m.addr == "" {
		return func() error { return nil }, nil
	}
	c := metrics.New(metrics.Config{PerConnection: m.perConn})
	if err := c.Add(name, ep); err != nil {
		return nil, err
	}
	reg := prometheus.NewRegistry()
	if err := errors.Join(
		reg.Register(c),
		reg.Register(collectors.NewGoCollector()),
		reg.Register(collectors.NewProcessCollector(collectors.ProcessCollectorOpts{})),
	); err != nil {
		return nil, fmt.Errorf("--metrics: %w", err)
	}
	ln, err := net.Listen("tcp", m.addr)
	if err != nil {
		return nil, fmt.Errorf("--metrics: %w", err)
	}
	srv := &http.Server{Handler: metricsMux(reg), ReadHeaderTimeout: 10 * time.Second}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	fmt.Fprintf(e.stderr, "flightline %s: metrics on http://%s/metrics, profiles on http://%s/debug/pprof/\n", name, ln.Addr(), ln.Addr())
	if e.metricsReady != nil {
		e.metricsReady(ln.Addr())
	}
	return func() error {
		srv.Close()
		if err := <-done; !errors.Is(err, http.ErrServerClosed) {
			return fmt.Errorf("--metrics: %w", err)
		}
		return nil
	}, nil
}

// metricsMux routes /metrics to the registry and /debug/pprof/ to the
// runtime profiles (on our own mux: nothing is served from
// http.DefaultServeMux).
func metricsMux(g prometheus.Gatherer) *http.ServeMux {
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(g, promhttp.HandlerOpts{}))
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	return mux
}
