package matrix

import (
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestPlansAreWellFormed(t *testing.T) {
	for _, plan := range []string{PlanQuick, PlanFull, PlanSmoke} {
		cs, err := Build(plan, DefaultSizes(plan))
		require.NoError(t, err, plan)
		names := map[string]bool{}
		for _, c := range cs {
			key := c.Scenario + "/" + c.Name
			require.False(t, names[key], "%s: duplicate case %s", plan, key)
			names[key] = true
			require.NotEmpty(t, c.Peers, key)
			require.Positive(t, c.Timeout, key)
			if c.Scenario != ScenarioAbort {
				require.NoError(t, func() error { s := c.Spec; s.Peer = "x"; return validateTemplate(s) }(), key)
			}
			for _, p := range c.Peers {
				parts := []string{p}
				if c.Scenario == ScenarioCompete {
					parts = strings.Split(p, "+")
					require.Len(t, parts, 2, "%s: %s is not a pair a+b", key, p)
				}
				for _, q := range parts {
					require.True(t, slices.Contains(AllPeers, q) || q == SubjectNoRelease, "%s: unknown peer %s", key, q)
				}
			}
		}
		for _, s := range Scenarios {
			require.True(t, slices.ContainsFunc(cs, func(c Case) bool { return c.Scenario == s }), "%s lacks scenario %s", plan, s)
		}
	}
	_, err := Build("medium", Sizes{})
	require.Error(t, err)
}

func TestFullPlanCoversTheIssue(t *testing.T) {
	cs, _ := Build(PlanFull, DefaultSizes(PlanFull))
	count := func(scen string) int {
		return len(slices.DeleteFunc(slices.Clone(cs), func(c Case) bool { return c.Scenario != scen }))
	}
	require.Equal(t, 8, count(ScenarioBulk), "streams {1,8} x pinned {no,yes} x offloads {off,on}")
	require.Equal(t, 2, count(ScenarioLoss), "1% and 5%")
	require.Equal(t, 2, count(ScenarioPing), "one CPU and different CPUs")
	require.Equal(t, 1, count(ScenarioAbort))
	require.Equal(t, 1, count(ScenarioScale))
	for _, c := range cs {
		if c.Scenario == ScenarioLoss {
			require.Equal(t, c.Net.AtoB, c.Net.BtoA, "loss both ways")
		}
		if c.Scenario == ScenarioScale {
			require.Equal(t, 10000, c.Spec.Conns)
		}
	}
}

func TestSmokePlanRunsEveryPeerOnce(t *testing.T) {
	cs, _ := Build(PlanSmoke, DefaultSizes(PlanSmoke))
	seen := map[string]bool{}
	for _, c := range cs {
		for _, p := range c.Peers {
			seen[p] = true
		}
	}
	for _, p := range AllPeers {
		require.True(t, seen[p], "smoke plan never runs %s", p)
	}
	require.Len(t, cs, len(Scenarios))
}

func TestFilter(t *testing.T) {
	cs, _ := Build(PlanQuick, DefaultSizes(PlanQuick))
	got := Filter(cs, []string{ScenarioBulk}, []string{TCP})
	require.Len(t, got, 3)
	for _, c := range got {
		require.Equal(t, []string{TCP}, c.Peers)
	}
	require.Empty(t, Filter(cs, []string{ScenarioAbort}, []string{TCP}), "a case left without peers is dropped")
	require.Len(t, Filter(cs, nil, nil), len(cs))
	require.Contains(t, cs[0].Peers, Subject, "filtering must not modify the input")
}

func TestSlug(t *testing.T) {
	require.Equal(t, "1-stream-pinned-offloads-off", slug("1 stream, pinned, offloads off"))
	require.Equal(t, "1-loss-both-ways", slug("1% loss both ways"))
}
