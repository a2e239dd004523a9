package main

import (
	"testing"
	"time"

	"github.com/flightline/flightline/bench/internal/matrix"
	"github.com/stretchr/testify/require"
)

func TestParseArgsDefaults(t *testing.T) {
	o, err := parseArgs(nil)
	require.NoError(t, err)
	require.Equal(t, matrix.PlanQuick, o.Plan)
	require.Equal(t, 3, o.Reps)
	require.Nil(t, o.Scenarios)
	require.Nil(t, o.Peers)
	require.Equal(t, matrix.DefaultSizes(matrix.PlanQuick), o.Sizes)
	require.Equal(t, 10*time.Minute, o.Timeout)

	o, err = parseArgs([]string{"-plan", "smoke"})
	require.NoError(t, err)
	require.Equal(t, 1, o.Reps)

	o, err = parseArgs([]string{"-plan", "full"})
	require.NoError(t, err)
	require.Equal(t, 3*time.Hour, o.Timeout)
	require.EqualValues(t, 256<<20, o.Sizes.BulkBytes)
}

func TestParseArgsOverrides(t *testing.T) {
	o, err := parseArgs([]string{"-reps", "5", "-scenarios", "bulk, ping,bulk", "-peers", "tcp,flightline-udp",
		"-bytes", "32MiB", "-loss-bytes", "4M", "-messages", "100", "-conns", "7", "-run-timeout", "3s", "-cpuprofile"})
	require.NoError(t, err)
	require.Equal(t, 5, o.Reps)
	require.Equal(t, []string{"bulk", "ping"}, o.Scenarios)
	require.Equal(t, []string{"tcp", "flightline-udp"}, o.Peers)
	require.EqualValues(t, 32<<20, o.Sizes.BulkBytes)
	require.EqualValues(t, 4<<20, o.Sizes.LossBytes)
	require.Equal(t, 100, o.Sizes.PingMessages)
	require.Equal(t, 7, o.Sizes.ScaleConns)
	require.Equal(t, 3*time.Second, o.Sizes.RunTimeout)
	require.True(t, o.CPUProfile)
}

func TestParseArgsRejects(t *testing.T) {
	for _, args := range [][]string{
		{"-plan", "medium"},
		{"-reps", "-1"},
		{"-reps", "101"},
		{"-scenarios", "bulk,throughput"},
		{"-peers", "tcp,sctp"},
		{"-bytes", "0"},
		{"-bytes", "12 parsecs"},
		{"-bytes", "100B"},
		{"-bytes", "65GiB"},
		{"-messages", "-3"},
		{"-conns", "1000000"},
		{"-run-timeout", "10ms"},
		{"-timeout", "1ms"},
		{"-out", ""},
		{"stray"},
		{"-nosuchflag"},
	} {
		_, err := parseArgs(args)
		require.Error(t, err, "%q", args)
	}
}

func TestParseSize(t *testing.T) {
	for in, want := range map[string]int64{"4096": 4096, "64KiB": 64 << 10, "256MiB": 256 << 20, "1GiB": 1 << 30, "2G": 2 << 30, " 8 MB ": 8 << 20} {
		got, err := parseSize(in)
		require.NoError(t, err, in)
		require.Equal(t, want, got, in)
	}
}
