// Package e2e holds flightline's end-to-end tests: real endpoints on both
// datapaths (UDP sockets and AF_XDP) talking across veth pairs in network
// namespaces built by package testnet, with loss, reordering, duplication,
// delay and rate limits applied in the middle namespace.
//
// The package has no API; everything lives in _test.go files. The tests need
// root (they skip without it, and fail under CI=true). Set
// FLIGHTLINE_E2E_QUICK=1 (or pass -short) for the reduced sizes.
package e2e
