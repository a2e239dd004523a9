package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"io"
	"math/big"
	"net"
	"time"

	"github.com/quic-go/quic-go"
)

const quicALPN = "flightline-bench"

// runQUIC moves size bytes over streams quic-go streams of one connection on
// 127.0.0.1, with quic-go's default configuration (what a user picking it
// instead of flightline would get) and a self-signed certificate.
func runQUIC(ctx context.Context, streams int, size int64) (Result, error) {
	serverTLS, clientTLS, err := selfSignedTLS()
	if err != nil {
		return Result{}, err
	}
	ln, err := quic.ListenAddr("127.0.0.1:0", serverTLS, &quic.Config{})
	if err != nil {
		return Result{}, fmt.Errorf("quic listen: %w", err)
	}
	defer ln.Close()
	type accepted struct {
		c   *quic.Conn
		err error
	}
	acc := make(chan accepted, 1)
	go func() {
		c, err := ln.Accept(ctx)
		acc <- accepted{c, err}
	}()
	cc, err := quic.DialAddr(ctx, ln.Addr().String(), clientTLS, &quic.Config{})
	if err != nil {
		return Result{}, fmt.Errorf("quic dial: %w", err)
	}
	defer cc.CloseWithError(0, "")
	a := <-acc
	if a.err != nil {
		return Result{}, fmt.Errorf("quic accept: %w", a.err)
	}
	defer a.c.CloseWithError(0, "")

	p := pipe{
		open: func(ctx context.Context) (io.Writer, func() error, error) {
			s, err := cc.OpenStreamSync(ctx)
			if err != nil {
				return nil, nil, err
			}
			context.AfterFunc(ctx, func() { s.SetDeadline(time.Unix(1, 0)) })
			return s, s.Close, nil
		},
		accept: func(ctx context.Context) (io.Reader, error) {
			s, err := a.c.AcceptStream(ctx)
			if err != nil {
				return nil, err
			}
			context.AfterFunc(ctx, func() { s.SetDeadline(time.Unix(1, 0)) })
			return s, nil
		},
	}
	m, err := measure(ctx, p, streams, size)
	r := newResult(m)
	st := cc.ConnectionStats()
	r.Notes = fmt.Sprintf("quic-go default config, TLS 1.3, %d packets lost, srtt %v",
		st.PacketsLost, st.SmoothedRTT.Round(time.Microsecond))
	return r, err
}

// selfSignedTLS makes a throwaway ECDSA certificate for 127.0.0.1 and the
// TLS configs of both ends, the client trusting exactly that certificate.
func selfSignedTLS() (server, client *tls.Config, err error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("generate key: %w", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "flightline bench"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, nil, fmt.Errorf("create certificate: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, nil, fmt.Errorf("parse certificate: %w", err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	server = &tls.Config{
		Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key, Leaf: cert}},
		NextProtos:   []string{quicALPN},
	}
	client = &tls.Config{RootCAs: pool, ServerName: "127.0.0.1", NextProtos: []string{quicALPN}}
	return server, client, nil
}
