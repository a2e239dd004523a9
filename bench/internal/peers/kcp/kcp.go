// Package kcp is the kcp-go peer: github.com/xtaci/kcp-go/v5 in the "fast"
// profile its README and kcptun recommend for latency (nodelay on, 10 ms
// update interval, fast resend after 2 duplicate ACKs, no congestion
// window), with bulk-sized windows, FEC off, and either no encryption
// ("kcp") or AES ("kcp-crypt").
//
// KCP has no streams inside a session, no handshake and no close: Bulk uses
// one session per stream (the bulk header carries each stream's length, so
// nothing needs a half-close); Ping one session; Scale is not supported
// (see unsupported).
package kcp

import (
	"context"
	"crypto/pbkdf2"
	"crypto/sha1"
	"fmt"

	"github.com/flightline/flightline/bench/internal/peer"
	kcpgo "github.com/xtaci/kcp-go/v5"
)

// Names of the two registered peers.
const (
	Name      = "kcp"
	CryptName = "kcp-crypt"
)

func init() {
	peer.Register(Name, &Peer{})
	peer.Register(CryptName, &Peer{crypt: true})
}

// The session tuning: kcptun's "fast3" mode (the fastest of its presets;
// KCP's README gives the same with a 20 ms interval as "fastest"), the
// window kcp-go's own bulk tests use, and kcptun's socket buffer size.
const (
	noDelay    = 1  // nodelay mode: minimum RTO 30 ms, RTO grows 1.5x not 2x
	interval   = 10 // ms between update ticks
	resend     = 2  // fast retransmit after 2 duplicate ACKs
	noCongWnd  = 1  // no congestion window: send at the window's size
	sndWnd     = 1024
	rcvWnd     = 1024 // segments
	mtu        = 1400 // kcp-go's default; with AES's 20-byte header 1420 < 1472
	sockBuf    = 4 << 20
	chunk      = 64 << 10 // bytes per bulk write
	dataShards = 0        // FEC off
	parShards  = 0
)

// configInfo describes the tuning for the report.
const configInfo = "kcp-go fast3 nodelay=1 interval=10ms resend=2 nc=1 wnd=1024/1024 mtu=1400 stream ack_nodelay fec=off sockbuf=4MiB"

// Peer implements peer.Peer over kcp-go, with or without AES.
type Peer struct{ crypt bool }

// block is the packet cipher: nil (no encryption, no CRC either) for kcp,
// AES-256 for kcp-crypt. kcp-go's AES is CFB over each packet with a random
// nonce and a CRC32, not an AEAD, so it hides contents but is not
// authenticated encryption as TLS 1.3 or flightline's are. The key comes
// from s.Keys[CryptName] when the orchestrator provides one, else from a
// constant passphrase, through PBKDF2 as kcptun does.
func (p *Peer) block(s *peer.Spec) (kcpgo.BlockCrypt, error) {
	if !p.crypt {
		return nil, nil
	}
	pass := s.Keys[CryptName]
	if pass == "" {
		pass = "flightline-bench kcp-crypt"
	}
	key, err := pbkdf2.Key(sha1.New, pass, []byte("kcp-go"), 4096, 32)
	if err != nil {
		return nil, fmt.Errorf("derive kcp key: %w", err)
	}
	b, err := kcpgo.NewAESBlockCrypt(key)
	if err != nil {
		return nil, fmt.Errorf("kcp aes: %w", err)
	}
	return b, nil
}

func (p *Peer) info() string {
	if p.crypt {
		return configInfo + " crypt=aes-256-cfb"
	}
	return configInfo + " crypt=none"
}

// Serve implements peer.Peer.
func (p *Peer) Serve(ctx context.Context, s *peer.Spec, ready func()) (peer.Result, error) {
	if s.Scenario != peer.Bulk && s.Scenario != peer.Ping {
		return peer.Result{}, unsupported(s)
	}
	block, err := p.block(s)
	if err != nil {
		return peer.Result{}, err
	}
	ln, err := listen(ctx, s, block)
	if err != nil {
		return peer.Result{}, err
	}
	defer ln.close()
	ready()
	var r peer.Result
	if s.Scenario == peer.Bulk {
		r, err = serveBulk(ctx, s, ln)
	} else {
		r, err = servePing(ctx, s, ln)
	}
	r.Info = p.info()
	return r, err
}

// Run implements peer.Peer.
func (p *Peer) Run(ctx context.Context, s *peer.Spec) (peer.Result, error) {
	if s.Scenario != peer.Bulk && s.Scenario != peer.Ping {
		return peer.Result{}, unsupported(s)
	}
	block, err := p.block(s)
	if err != nil {
		return peer.Result{}, err
	}
	var r peer.Result
	if s.Scenario == peer.Bulk {
		r, err = runBulk(ctx, s, block)
	} else {
		r, err = runPing(ctx, s, block)
	}
	r.Info = p.info()
	return r, err
}

// unsupported is the answer to Scale and unknown scenarios. Scale is left
// out on purpose: a KCP session has no handshake (the server creates it on
// the first packet), so handshakes/s would time one echo, and no close, so
// the server could not tell when the client's measurement is done.
func unsupported(s *peer.Spec) error {
	return fmt.Errorf("%w: %s on %s", peer.ErrUnsupported, s.Scenario, s.Peer)
}
