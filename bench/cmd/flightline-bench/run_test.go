package main

import (
	"context"
	"strings"
	"testing"

	"github.com/flightline/flightline/bench/internal/matrix"
	"github.com/flightline/flightline/bench/internal/report"
	"github.com/stretchr/testify/require"
)

func rec(peer, errMsg string) report.Record {
	return report.Record{Scenario: matrix.ScenarioScale, Case: "10000 idle connections", Peer: peer, Error: errMsg}
}

// TestConclude pins the exit decision: only flightline's own failures, the
// harness's and a plan stopped early fail the command; other peers' failed
// runs are listed and the command succeeds.
func TestConclude(t *testing.T) {
	ok := rec(matrix.Subject, "")
	skipped := rec(matrix.FlightlineXDP, "")
	skipped.Skipped = "not available: no AF_XDP"
	quic := rec(matrix.QUIC, "client: dial 99 of 5000: timeout\nserver: deadline exceeded")
	kcp := rec(matrix.KCP, "server: deadline exceeded")
	harness := rec(matrix.TCP, "build network: ip: exit status 1")
	harness.Harness = true

	for _, tc := range []struct {
		name    string
		recs    []report.Record
		execErr error
		fail    []string // substrings of the error; nil = success
		listed  []string // substrings of the listing of other peers' failures
	}{
		{name: "all ok", recs: []report.Record{ok, skipped}},
		{name: "other peers failed", recs: []report.Record{ok, quic, kcp, skipped},
			listed: []string{"2 of 4 runs of other peers failed", "quic-go rep 0: client: dial 99 of 5000: timeout; server: deadline exceeded\n", "/kcp rep 0: server: deadline"}},
		{name: "flightline-udp failed", recs: []report.Record{rec(matrix.Subject, "verify: byte 17 differs"), quic},
			fail:   []string{"1 of 2 runs failed", "flightline-udp rep 0: verify: byte 17 differs"},
			listed: []string{"1 of 2 runs of other peers failed", "quic-go"}},
		{name: "flightline-xdp failed", recs: []report.Record{rec(matrix.FlightlineXDP, "server: x")},
			fail: []string{"flightline-xdp rep 0"}},
		{name: "release-off variant failed", recs: []report.Record{rec(matrix.SubjectNoRelease, "stream B never reached full rate")},
			fail: []string{"release off rep 0"}},
		{name: "harness failed on another peer's run", recs: []report.Record{ok, harness},
			fail: []string{"1 of 2 runs failed", "harness: scale/10000 idle connections/tcp rep 0: build network"}},
		{name: "stopped early", recs: []report.Record{ok, quic}, execErr: context.DeadlineExceeded,
			fail: []string{"0 of 2 runs failed", "stopped early: context deadline exceeded"}, listed: []string{"quic-go"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out strings.Builder
			err := conclude(tc.recs, tc.execErr, &out)
			if tc.fail == nil {
				require.NoError(t, err)
			} else {
				require.Error(t, err)
				for _, s := range tc.fail {
					require.Contains(t, err.Error(), s)
				}
				require.NotContains(t, err.Error(), "quic-go", "another peer's failure is not ours")
			}
			if tc.listed == nil {
				require.Empty(t, out.String())
			}
			for _, s := range tc.listed {
				require.Contains(t, out.String(), s)
			}
			require.NotContains(t, out.String(), matrix.Subject+" rep", "flightline's own failures are in the error, not the listing")
		})
	}
}

func TestFlightlinePeers(t *testing.T) {
	for _, p := range matrix.AllPeers {
		want := p == matrix.Subject || p == matrix.FlightlineXDP || p == matrix.FlightlineXDPG ||
			p == matrix.FlightlineXDPB || p == matrix.FlightlineBBR || p == matrix.FlightlineCubic
		require.Equal(t, want, matrix.Flightline(p), p)
	}
	require.True(t, matrix.Flightline(matrix.SubjectNoRelease))
}
