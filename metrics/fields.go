package metrics

import (
	"github.com/flightline/flightline/transport"
	"github.com/flightline/flightline/transport/link"
	"github.com/prometheus/client_golang/prometheus"
)

// Metric name prefixes. Connection counters come in two forms that cannot
// share a name, because a metric family has one set of label names:
// flightline_conn_* are summed over an endpoint's connections (labels
// endpoint[,cause]) and flightline_perconn_* are per connection (labels
// endpoint,conn[,cause]), the latter only with Config.PerConnection.
const (
	namespace  = "flightline"
	aggPrefix  = namespace + "_conn_"
	connPrefix = namespace + "_perconn_"
)

// connCounter is one monotonic connection counter read from Stats. Entries
// that share a name are one family told apart by their cause label.
type connCounter struct {
	name, help, cause string
	get               func(*transport.Stats) uint64
}

// connCounters are the connection counters exported, in exposition order.
var connCounters = []connCounter{
	{"packets_sent_total", "Packets sent, including retransmissions and probes.", "", func(s *transport.Stats) uint64 { return s.PacketsSent }},
	{"sent_bytes_total", "Bytes of packets sent (encrypted datagram payloads).", "", func(s *transport.Stats) uint64 { return s.BytesSent }},
	{"packets_received_total", "Packets received and authenticated.", "", func(s *transport.Stats) uint64 { return s.PacketsReceived }},
	{"received_bytes_total", "Bytes of packets received and authenticated.", "", func(s *transport.Stats) uint64 { return s.BytesReceived }},
	{"acked_bytes_total", "Bytes of sent packets the peer acknowledged.", "", func(s *transport.Stats) uint64 { return s.BytesAcked }},
	{"delivered_bytes_total", "Bytes the delivery-rate sampler counted acknowledged.", "", func(s *transport.Stats) uint64 { return s.BytesDelivered }},
	{"declared_lost_bytes_total", "Bytes the delivery-rate sampler counted declared lost (retransmissions included).", "", func(s *transport.Stats) uint64 { return s.BytesDeclaredLost }},
	{"packets_lost_total", "Packets declared lost by the packet or time threshold.", "", func(s *transport.Stats) uint64 { return s.PacketsLost }},
	{"packets_retransmitted_total", "Resends for any reason (loss, tail loss probe, RTO).", "", func(s *transport.Stats) uint64 { return s.PacketsRetransmitted }},
	{"packets_abandoned_total", "Packets given up after MaxRetransmits.", "", func(s *transport.Stats) uint64 { return s.PacketsAbandoned }},
	{"tail_loss_probes_total", "Tail loss probes sent.", "", func(s *transport.Stats) uint64 { return s.TailLossProbes }},
	{"rtos_total", "Retransmission timeouts fired.", "", func(s *transport.Stats) uint64 { return s.RTOs }},
	{"dropped_packets_total", "Received packets dropped without changing connection state, by cause.", "duplicate", func(s *transport.Stats) uint64 { return s.DroppedDuplicate }},
	{"dropped_packets_total", "", "undecryptable", func(s *transport.Stats) uint64 { return s.DroppedUndecryptable }},
	{"dropped_packets_total", "", "malformed", func(s *transport.Stats) uint64 { return s.DroppedMalformed }},
	{"dropped_packets_total", "", "message_queue_full", func(s *transport.Stats) uint64 { return s.DroppedMessageQueue }},
	{"duplicate_stream_bytes_total", "Received stream bytes that had already arrived (cost of spurious resends and duplication).", "", func(s *transport.Stats) uint64 { return s.DuplicateStreamBytes }},
	{"resends_skipped_total", "Queued resends dropped because their packet was acknowledged or its stream aborted first.", "", func(s *transport.Stats) uint64 { return s.ResendsSkipped }},
	{"send_errors_total", "Datagrams the datapath failed to send.", "", func(s *transport.Stats) uint64 { return s.SendErrors }},
	{"streams_opened_total", "Streams opened by this side.", "", func(s *transport.Stats) uint64 { return s.StreamsOpened }},
	{"streams_accepted_total", "Streams opened by the peer and accepted.", "", func(s *transport.Stats) uint64 { return s.StreamsAccepted }},
	{"window_wait_aborts_total", "Writes aborted while waiting for flow-control window.", "", func(s *transport.Stats) uint64 { return s.WindowWaitAborts }},
	{"abort_released_bytes_total", "Flight bytes released because their stream aborted.", "", func(s *transport.Stats) uint64 { return s.AbortReleasedBytes }},
	{"flight_underflows_total", "Flight releases below zero; must stay 0 (nonzero is a transport bug).", "", func(s *transport.Stats) uint64 { return s.FlightUnderflows }},
	{"key_updates_total", "Send key generations after the first (initiated plus followed).", "", func(s *transport.Stats) uint64 { return s.KeyUpdates }},
	{"key_updates_initiated_total", "Key updates this side initiated.", "", func(s *transport.Stats) uint64 { return s.KeyUpdatesInitiated }},
	{"peer_key_updates_total", "Peer key generations this side authenticated.", "", func(s *transport.Stats) uint64 { return s.PeerKeyUpdates }},
	{"previous_key_packets_total", "Packets opened with the previous key after a peer key update.", "", func(s *transport.Stats) uint64 { return s.PreviousKeyPackets }},
	{"auth_failures_total", "Packets that failed authentication under any key (the integrity-limit count).", "", func(s *transport.Stats) uint64 { return s.AuthFailures }},
}

// connGauge is one instantaneous connection value read from Stats.
type connGauge struct {
	name, help string
	get        func(*transport.Stats) float64
}

// connGauges are summed per endpoint and, with PerConnection, exported per
// connection.
var connGauges = []connGauge{
	{"flight_size_bytes", "Bytes charged to the flight and not yet released.", func(s *transport.Stats) float64 { return float64(s.FlightSize) }},
	{"tracked_packets", "Packets in flight (tracked for acknowledgement).", func(s *transport.Stats) float64 { return float64(s.TrackedPackets) }},
	{"cwnd_bytes", "Congestion window.", func(s *transport.Stats) float64 { return float64(s.CongestionWindow) }},
	{"pacing_rate_bytes_per_second", "Pacing rate the congestion controller asks for.", func(s *transport.Stats) float64 { return s.PacingRate }},
	{"bandwidth_estimate_bytes_per_second", "Model-based controller's bottleneck bandwidth estimate (BBR max_bw; 0 for CUBIC and fixed rate).", func(s *transport.Stats) float64 { return s.BandwidthEstimate }},
}

// perConnGauges are only meaningful for one connection (a sum of RTTs is
// not); the endpoint view of RTT is the histogram.
var perConnGauges = []connGauge{
	{"smoothed_rtt_seconds", "Smoothed round-trip time.", func(s *transport.Stats) float64 { return s.SmoothedRTT.Seconds() }},
	{"min_rtt_seconds", "Minimum round-trip time seen.", func(s *transport.Stats) float64 { return s.MinRTT.Seconds() }},
	{"latest_rtt_seconds", "Latest round-trip time sample.", func(s *transport.Stats) float64 { return s.LatestRTT.Seconds() }},
}

// epCounter is one endpoint counter read from EndpointStats.
type epCounter struct {
	name, help, label, value string // label/value: "" or the label telling a family's members apart
	get                      func(*transport.EndpointStats) uint64
}

// epCounters are the endpoint's datagram drops and handshake events. The
// handshake outcomes are events, not a partition of attempts: a dialer
// retrying after a refusal counts again, and a completed handshake can
// later end in accept_queue_full or pending_expired.
var epCounters = []epCounter{
	{"endpoint_dropped_datagrams_total", "Datagrams the endpoint dropped before any connection saw them, by cause.", "cause", "malformed", func(s *transport.EndpointStats) uint64 { return s.DroppedMalformed }},
	{"endpoint_dropped_datagrams_total", "", "cause", "unknown_conn", func(s *transport.EndpointStats) uint64 { return s.DroppedUnknownConn }},
	{"endpoint_dropped_datagrams_total", "", "cause", "not_listening", func(s *transport.EndpointStats) uint64 { return s.DroppedNotListening }},
	{"handshakes_total", "Handshake events by outcome (see docs/operations.md: retries count again).", "outcome", "completed", func(s *transport.EndpointStats) uint64 { return s.Handshakes }},
	{"handshakes_total", "", "outcome", "rejected", func(s *transport.EndpointStats) uint64 { return s.DroppedHandshake }},
	{"handshakes_total", "", "outcome", "refused", func(s *transport.EndpointStats) uint64 { return s.ConnectionsRefused }},
	{"handshakes_total", "", "outcome", "rate_limited", func(s *transport.EndpointStats) uint64 { return s.HandshakesRateLimited }},
	{"handshakes_total", "", "outcome", "queue_full", func(s *transport.EndpointStats) uint64 { return s.HandshakeQueueDrops }},
	{"handshakes_total", "", "outcome", "accept_queue_full", func(s *transport.EndpointStats) uint64 { return s.AcceptQueueFull }},
	{"handshakes_total", "", "outcome", "pending_expired", func(s *transport.EndpointStats) uint64 { return s.PendingExpired }},
	{"handshakes_malformed_payload_total", "Handshakes from authenticated peers with an unusable payload (a subset of outcome=\"rejected\").", "", "", func(s *transport.EndpointStats) uint64 { return s.HandshakesMalformedPayload }},
	{"handshake_cookies_sent_total", "Stateless retries (cookies) demanded under load.", "", "", func(s *transport.EndpointStats) uint64 { return s.CookiesSent }},
	{"handshake_initiations_processed_total", "Initiations that cost Diffie-Hellman work (passed MAC, cookie and rate checks).", "", "", func(s *transport.EndpointStats) uint64 { return s.InitiationsProcessed }},
}

// linkCounter is one datapath counter from link.Caps.Counters (AF_XDP
// rings; zero on datapaths that keep none).
type linkCounter struct {
	name, help, cause string
	get               func(*link.Counters) uint64
}

var linkCounters = []linkCounter{
	{"link_dropped_total", "Frames the datapath itself dropped or failed to send, by cause (AF_XDP; zero elsewhere).", "rx_dropped", func(c *link.Counters) uint64 { return c.RxDropped }},
	{"link_dropped_total", "", "rx_ring_full", func(c *link.Counters) uint64 { return c.RxRingFull }},
	{"link_dropped_total", "", "rx_fill_ring_empty", func(c *link.Counters) uint64 { return c.RxFillRingEmpty }},
	{"link_dropped_total", "", "rx_invalid_descs", func(c *link.Counters) uint64 { return c.RxInvalidDescs }},
	{"link_dropped_total", "", "tx_invalid_descs", func(c *link.Counters) uint64 { return c.TxInvalidDescs }},
	{"link_dropped_total", "", "tx_full_errors", func(c *link.Counters) uint64 { return c.TxFullErrors }},
	{"link_dropped_total", "", "neighbour_unresolved", func(c *link.Counters) uint64 { return c.NeighbourDrops }},
	{"link_tx_ring_empty_total", "Times the kernel found the AF_XDP TX ring empty when woken (not a loss).", "", func(c *link.Counters) uint64 { return c.TxRingEmpty }},
	{"link_tx_full_waits_total", "Times a send waited for a free AF_XDP TX frame (backpressure, not a loss).", "", func(c *link.Counters) uint64 { return c.TxFullWaits }},
}

type linkGauge struct {
	name, help string
	get        func(*link.Counters) float64
}

var linkGauges = []linkGauge{
	{"link_fill_frames", "AF_XDP receive frames (fill ring capacity).", func(c *link.Counters) float64 { return float64(c.FillSize) }},
	{"link_fill_queued_frames", "AF_XDP receive frames on the fill ring now.", func(c *link.Counters) float64 { return float64(c.FillQueued) }},
	{"link_fill_low_water_frames", "Fewest AF_XDP frames seen on the fill ring after a refill (near 0: the kernel nearly ran out).", func(c *link.Counters) float64 { return float64(c.FillLowWater) }},
	{"link_tx_frames", "AF_XDP transmit frames.", func(c *link.Counters) float64 { return float64(c.TxFrames) }},
	{"link_tx_in_flight_frames", "AF_XDP transmit frames in the TX or completion ring now.", func(c *link.Counters) float64 { return float64(c.TxInFlight) }},
}

// descs holds one Desc per metric family: families whose members differ
// only by a cause/outcome label share it (a registry rejects two Descs of
// one name).
type descs struct {
	byName map[string]*prometheus.Desc
	order  []*prometheus.Desc
}

func (d *descs) add(name, help string, labels ...string) *prometheus.Desc {
	if desc, ok := d.byName[name]; ok {
		return desc
	}
	desc := prometheus.NewDesc(name, help, labels, nil)
	if d.byName == nil {
		d.byName = make(map[string]*prometheus.Desc)
	}
	d.byName[name] = desc
	d.order = append(d.order, desc)
	return desc
}

// withCause appends the cause label name when a family has one.
func withCause(labels []string, cause string) []string {
	if cause == "" {
		return labels
	}
	return append(labels[:len(labels):len(labels)], "cause")
}

// causeValues appends the cause label value when a family has one.
func causeValues(values []string, cause string) []string {
	if cause == "" {
		return values
	}
	return append(values[:len(values):len(values)], cause)
}
