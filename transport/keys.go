package transport

import "github.com/flightline/flightline/transport/internal/handshake"

// PrivateKey is a static X25519 identity key.
type PrivateKey = handshake.PrivateKey

// PublicKey is the public half of a PrivateKey; peers are identified by it.
type PublicKey = handshake.PublicKey

// GenerateKey returns a new random identity key.
func GenerateKey() (PrivateKey, error) { return handshake.GenerateKey() }

// ParsePrivateKey parses the base64 text form of a private key.
func ParsePrivateKey(s string) (PrivateKey, error) { return handshake.ParsePrivateKey(s) }

// ParsePublicKey parses the base64 text form of a public key.
func ParsePublicKey(s string) (PublicKey, error) { return handshake.ParsePublicKey(s) }
