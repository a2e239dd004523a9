package flightline

import (
	"fmt"

	"github.com/flightline/flightline/bench/internal/peer"
	"github.com/flightline/flightline/transport"
)

// Spec.Keys entries NewKeys makes: both static identities, in the
// transport's base64 text form.
const (
	keyServerPrivate = "flightline-server-private"
	keyServerPublic  = "flightline-server-public"
	keyClientPrivate = "flightline-client-private"
	keyClientPublic  = "flightline-client-public"
)

// NewKeys makes a fresh server and client static key pair for one run. The
// orchestrator puts the map in Spec.Keys: the two sides are separate
// processes and must know each other's public key before either starts, so
// nothing has to be exchanged at run time.
func NewKeys() (map[string]string, error) {
	srv, err := transport.GenerateKey()
	if err != nil {
		return nil, fmt.Errorf("flightline: server key: %w", err)
	}
	cli, err := transport.GenerateKey()
	if err != nil {
		return nil, fmt.Errorf("flightline: client key: %w", err)
	}
	return map[string]string{
		keyServerPrivate: srv.String(),
		keyServerPublic:  srv.Public().String(),
		keyClientPrivate: cli.String(),
		keyClientPublic:  cli.Public().String(),
	}, nil
}

// sideKeys is what one side needs: its own identity and the other side's
// public key (the server to allow, the client to dial).
type sideKeys struct {
	private transport.PrivateKey
	peer    transport.PublicKey
}

// decodeKeys picks side's keys out of a Spec.Keys map made by NewKeys.
func decodeKeys(m map[string]string, side peer.Side) (sideKeys, error) {
	privName, pubName := keyServerPrivate, keyClientPublic
	if side == peer.ClientSide {
		privName, pubName = keyClientPrivate, keyServerPublic
	}
	var k sideKeys
	priv, ok := m[privName]
	if !ok {
		return k, fmt.Errorf("flightline: spec has no %q key (make Spec.Keys with flightline.NewKeys)", privName)
	}
	pub, ok := m[pubName]
	if !ok {
		return k, fmt.Errorf("flightline: spec has no %q key (make Spec.Keys with flightline.NewKeys)", pubName)
	}
	var err error
	if k.private, err = transport.ParsePrivateKey(priv); err != nil {
		return k, fmt.Errorf("flightline: key %q: %w", privName, err)
	}
	if k.peer, err = transport.ParsePublicKey(pub); err != nil {
		return k, fmt.Errorf("flightline: key %q: %w", pubName, err)
	}
	return k, nil
}
