package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/flightline/flightline/bench/internal/matrix"
	"github.com/flightline/flightline/bench/internal/peertest"
	"github.com/flightline/flightline/bench/internal/report"
	"github.com/flightline/flightline/testnet"
	"github.com/stretchr/testify/require"
)

func TestMain(m *testing.M) { peertest.Main(m) }

// TestSmokePlan runs the smoke plan end to end — every peer and every
// scenario once, tiny sizes, each side in its own process in a namespace —
// and checks every output, so the harness keeps working.
func TestSmokePlan(t *testing.T) {
	testnet.RequirePrivileged(t)
	o, err := parseArgs([]string{"-plan", "smoke", "-cpuprofile", "-out", t.TempDir(), "-timeout", "5m"})
	require.NoError(t, err)
	var stdout, stderr bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	err = run(ctx, o, &stdout, &stderr)
	require.NoError(t, err, "stderr:\n%s", stderr.String())

	recs, err := report.ReadJSONL(filepath.Join(o.Out, "results.jsonl"))
	require.NoError(t, err)
	ran := map[string]bool{}
	for _, r := range recs {
		if strings.HasPrefix(r.Skipped, "not available") { // AF_XDP missing: reported, not run
			ran[r.Peer] = true
		}
		require.Empty(t, r.Error, "%s/%s/%s", r.Scenario, r.Case, r.Peer)
		if r.Skipped == "" {
			ran[r.Peer] = true
		}
		if r.Skipped == "" && (r.Scenario == matrix.ScenarioBulk || r.Scenario == matrix.ScenarioLoss) {
			require.Positive(t, r.Metrics[report.MetricGoodput], "%s/%s", r.Scenario, r.Peer)
			require.NotEmpty(t, r.Profiles, "%s/%s: -cpuprofile wrote nothing", r.Scenario, r.Peer)
		}
	}
	for _, p := range matrix.AllPeers {
		require.True(t, ran[p], "peer %s never ran (skipped everywhere?)", p)
	}
	for _, f := range []string{"results.md", "goodput.png", "latency.png", "abort.png"} {
		st, err := os.Stat(filepath.Join(o.Out, f))
		require.NoError(t, err, f)
		require.Positive(t, st.Size(), f)
	}
	require.Contains(t, stdout.String(), "## bulk")
}
