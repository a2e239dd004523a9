// Package all links every benchmark peer into a binary: importing it for
// its side effects registers them with package peer.
package all

import (
	_ "github.com/flightline/flightline/bench/internal/peers/blast"      // udp-blast, udp-gso-blast, xdp-blast, xdp-blast-busypoll
	_ "github.com/flightline/flightline/bench/internal/peers/flightline" // flightline-udp, -xdp, -xdp-generic, -xdp-busypoll
	_ "github.com/flightline/flightline/bench/internal/peers/kcp"        // kcp, kcp-crypt
	_ "github.com/flightline/flightline/bench/internal/peers/quicgo"     // quic-go
	_ "github.com/flightline/flightline/bench/internal/peers/tcp"        // tcp, tcp-cubic
)
