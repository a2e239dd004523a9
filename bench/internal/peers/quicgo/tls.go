package quicgo

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"math/big"
	"time"

	"github.com/flightline/flightline/bench/internal/peer"
)

// alpn is the application protocol both sides offer; QUIC requires one.
const alpn = "flightline-bench"

// The server's identity is an ECDSA P-256 key (what a typical QUIC
// deployment uses, and what the old loopback harness used) that both
// processes derive from the Spec: the server signs with it, the client pins
// its public key. Nothing has to be exchanged at run time, and the client
// still authenticates the server for real: crypto/tls checks the
// CertificateVerify signature against the leaf's key even when chain
// verification is skipped, and the pin requires that key to be ours.
//
// The key material is s.Keys[Name] when the orchestrator provides it, else
// a constant; with s.Seed mixed in either way. This is a benchmark, not a
// deployment: the point is that the handshake does the real work.

// serverKey derives the server's private key.
func serverKey(s *peer.Spec) (*ecdsa.PrivateKey, error) {
	// A SHA-256 output is a valid P-256 scalar unless it is zero or not
	// below the group order (probability about 2^-32); the counter moves
	// past such an output deterministically on both sides.
	for ctr := range 16 {
		h := sha256.Sum256(fmt.Appendf(nil, "flightline-bench quic-go server key\x00%d\x00%d\x00%s", ctr, s.Seed, s.Keys[Name]))
		if k, err := ecdsa.ParseRawPrivateKey(elliptic.P256(), h[:]); err == nil {
			return k, nil
		}
	}
	return nil, errors.New("derive server key: no valid scalar")
}

// serverTLS is the server's TLS config: a self-signed certificate for the
// derived key. The certificate's signature is randomized, so the two sides
// would not agree on its bytes; they agree on its key, which is what the
// client pins.
func serverTLS(s *peer.Spec) (*tls.Config, error) {
	key, err := serverKey(s)
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "flightline bench"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, fmt.Errorf("create certificate: %w", err)
	}
	return &tls.Config{
		Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}},
		NextProtos:   []string{alpn},
	}, nil
}

// clientTLS is the client's TLS config: no chain verification (there is no
// CA), but the leaf's public key must be the derived server key.
func clientTLS(s *peer.Spec) (*tls.Config, error) {
	key, err := serverKey(s)
	if err != nil {
		return nil, err
	}
	want, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
	if err != nil {
		return nil, fmt.Errorf("encode server public key: %w", err)
	}
	return &tls.Config{
		InsecureSkipVerify: true, // replaced by the pin below
		VerifyPeerCertificate: func(raw [][]byte, _ [][]*x509.Certificate) error {
			if len(raw) == 0 {
				return errors.New("server sent no certificate")
			}
			leaf, err := x509.ParseCertificate(raw[0])
			if err != nil {
				return fmt.Errorf("server certificate: %w", err)
			}
			if !bytes.Equal(leaf.RawSubjectPublicKeyInfo, want) {
				return errors.New("server certificate: public key is not the pinned one")
			}
			return nil
		},
		ServerName: "flightline-bench",
		NextProtos: []string{alpn},
	}, nil
}
