package report

import (
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func fullRecord() Record {
	return Record{
		Seq:      7,
		Rep:      2,
		Time:     time.Date(2026, 3, 4, 5, 6, 7, 8, time.UTC),
		Scenario: "abort",
		Case:     "release <on>",
		Peer:     "flightline-udp",
		Metrics:  map[string]float64{MetricAbortFullRate: 12.5, "custom": -1},
		RTTs:     []float64{10.5, 11},
		Series: []Sample{
			{T: -time.Millisecond, Flight: 1 << 20, Cwnd: 2 << 20, Goodput: 0, Variant: "release on"},
			{T: 3 * time.Millisecond, Flight: 1 << 10, Cwnd: 2 << 10, Goodput: 512.25, Variant: "release on"},
		},
		Info:     "datapath=udp gso=true",
		Profiles: []string{"/tmp/a.cpu.pprof"},
	}
}

func TestJSONLRoundTrip(t *testing.T) {
	path := filepath.Join(t.TempDir(), "runs.jsonl")
	sk := skipped("bulk", "1 stream", "kcp", 0, "not available: no kcp")
	fl := failed("bulk", "1 stream", "tcp", 1, "boom")
	recs := []Record{fullRecord(), sk, fl}
	require.NoError(t, WriteJSONL(path, recs))

	b, err := os.ReadFile(path)
	require.NoError(t, err)
	require.Equal(t, 3, strings.Count(string(b), "\n"), "one line per record")
	require.Contains(t, string(b), `"case":"release <on>"`, "no HTML escaping")

	got, err := ReadJSONL(path)
	require.NoError(t, err)
	require.Equal(t, recs, got)

	fi, err := os.Stat(path)
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o644), fi.Mode().Perm())
}

func TestReadJSONLBlankLinesAndNoFinalNewline(t *testing.T) {
	path := filepath.Join(t.TempDir(), "runs.jsonl")
	require.NoError(t, os.WriteFile(path, []byte("\n{\"seq\":1}\n  \n{\"seq\":2,\"new_field\":true}"), 0o644))
	got, err := ReadJSONL(path)
	require.NoError(t, err)
	require.Len(t, got, 2)
	require.Equal(t, 1, got[0].Seq)
	require.Equal(t, 2, got[1].Seq)
}

func TestReadJSONLErrorsNameTheLine(t *testing.T) {
	dir := t.TempDir()
	for name, content := range map[string]string{
		"truncated":  "{\"seq\":1}\n{\"seq\":2}\n{\"seq\":3,\"scen\n{\"seq\":4}\n",
		"not object": "{\"seq\":1}\n{\"seq\":2}\nnull\n",
		"wrong type": "{\"seq\":1}\n\n{\"seq\":\"three\"}\n",
		"trailing":   "{\"seq\":1}\n{\"seq\":2}\n{\"seq\":3} {\"seq\":4}\n",
	} {
		path := filepath.Join(dir, strings.ReplaceAll(name, " ", "_")+".jsonl")
		require.NoError(t, os.WriteFile(path, []byte(content), 0o644))
		_, err := ReadJSONL(path)
		require.Error(t, err, name)
		require.Contains(t, err.Error(), path+":3:", name)
	}
	_, err := ReadJSONL(filepath.Join(dir, "missing.jsonl"))
	require.ErrorIs(t, err, os.ErrNotExist)
}

func TestWriteJSONLNaNKeepsOldFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "runs.jsonl")
	require.NoError(t, WriteJSONL(path, []Record{fullRecord()}))
	before, err := os.ReadFile(path)
	require.NoError(t, err)

	bad := rec("bulk", "1 stream", "tcp", 0, goodput(math.NaN()))
	bad.Seq = 9
	err = WriteJSONL(path, []Record{fullRecord(), bad})
	require.ErrorContains(t, err, "seq 9, bulk/1 stream/tcp")

	after, err := os.ReadFile(path)
	require.NoError(t, err)
	require.Equal(t, before, after, "a failed write must leave the previous file")
	entries, err := os.ReadDir(filepath.Dir(path))
	require.NoError(t, err)
	require.Len(t, entries, 1, "no temporary file left behind")
}
