package testnet

import (
	"errors"
	"github.com/stretchr/testify/require"
	"math"
	"testing"
	"time"
)

// fakeTB records what requirePrivileged decided instead of acting on it.
type fakeTB struct{ skipped, fatal string }

func (f *fakeTB) Helper()           {}
func (f *fakeTB) Skip(args ...any)  { f.skipped = args[0].(string) }
func (f *fakeTB) Fatal(args ...any) { f.fatal = args[0].(error).Error() }

func TestRequirePrivilegedDecision(t *testing.T) {
	reason := errors.New("testnet: not privileged: CAP_NET_ADMIN missing")
	for _, tc := range []struct {
		name      string
		err       error
		ci        string
		skip, die bool
	}{
		{"privileged", nil, "", false, false},
		{"privileged in CI", nil, "true", false, false},
		{"unprivileged locally skips", reason, "", true, false},
		{"unprivileged CI=false skips", reason, "false", true, false},
		{"unprivileged CI=true fails", reason, "true", false, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var f fakeTB
			requirePrivileged(&f, tc.err, tc.ci)
			require.Equal(t, tc.skip, f.skipped != "")
			require.Equal(t, tc.die, f.fatal != "")
			if tc.skip {
				require.Equal(t, reason.Error(), f.skipped, "skip must carry the exact reason")
			}
			if tc.die {
				require.True(t, errors.Is(tc.err, reason))
				require.Equal(t, "CI=true but privileged test cannot run: "+reason.Error(), f.fatal)
			}
		})
	}
}

func TestRequirePrivilegedWithoutCI(t *testing.T) {
	// With CI unset this either passes through (root) or skips with the
	// reason; it must never fail.
	t.Setenv("CI", "")
	err := Privileged()
	if err != nil {
		t.Logf("not privileged: %v", err)
	}
	RequirePrivileged(t)
	require.NoError(t, err)
}

func TestImpairmentValidate(t *testing.T) {
	for _, tc := range []struct {
		name string
		imp  Impairment
		ok   bool
	}{
		{"zero", Impairment{}, true},
		{"all", Impairment{Loss: 1, Rate: 1e6, Delay: time.Millisecond, Jitter: time.Millisecond, Reorder: 0.5, Duplicate: 0.5, Seed: 3}, true},
		{"loss > 1", Impairment{Loss: 1.1}, false},
		{"loss NaN", Impairment{Loss: math.NaN()}, false},
		{"reorder < 0", Impairment{Reorder: -0.1}, false},
		{"duplicate > 1", Impairment{Duplicate: 2}, false},
		{"negative rate", Impairment{Rate: -1}, false},
		{"negative delay", Impairment{Delay: -time.Second}, false},
		{"huge delay", Impairment{Delay: time.Hour}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.imp.validate()
			require.Equal(t, tc.ok, err == nil, "err=%v", err)
		})
	}
	require.True(t, Impairment{Seed: 7}.isZero(), "a seed alone impairs nothing")
	require.False(t, Impairment{Rate: 1}.isZero())
}

func TestNeedsUserspace(t *testing.T) {
	require.False(t, Impairment{Loss: 0.5, Rate: 1e6}.needsUserspace(true), "loss and tbf rate stay in the kernel")
	require.True(t, Impairment{Rate: 1e6}.needsUserspace(false), "rate without tbf needs the hop")
	require.True(t, Impairment{Delay: 1}.needsUserspace(true))
	require.True(t, Impairment{Jitter: 1}.needsUserspace(true))
	require.True(t, Impairment{Reorder: 0.1}.needsUserspace(true))
	require.True(t, Impairment{Duplicate: 0.1}.needsUserspace(true))
}

func TestConfigDefaults(t *testing.T) {
	c, err := Config{}.withDefaults()
	require.NoError(t, err)
	require.Equal(t, 1500, c.MTU)
	require.Equal(t, 1, c.Queues)
	require.False(t, c.TxChecksumOffload)
	for _, bad := range []Config{{MTU: 10}, {MTU: 70000}, {Queues: 65}, {Queues: -1}, {AtoB: Impairment{Loss: 2}}, {BtoA: Impairment{Rate: -5}}} {
		_, err := bad.withDefaults()
		require.Error(t, err, "%+v", bad)
	}
}

func TestLossThreshold(t *testing.T) {
	require.Equal(t, uint64(0), lossThreshold(0))
	require.Equal(t, uint64(1<<32), lossThreshold(1))
	require.Equal(t, uint64(1<<31), lossThreshold(0.5))
	require.Equal(t, uint64(429496730), lossThreshold(0.1))
}

func TestIsHarnessName(t *testing.T) {
	for name, want := range map[string]bool{
		"fltn0a1fa":  true,
		"fltnffffm":  true,
		"fltn0a1fx":  false,
		"fltn0a1Za":  false,
		"fltn0a1f":   false,
		"fltn0a1faa": false,
		"other1234a": false,
	} {
		require.Equal(t, want, isHarnessName(name), name)
	}
}
