package main

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestParseSize(t *testing.T) {
	tests := []struct {
		in   string
		want uint64
		err  bool
	}{
		{"0", 0, false},
		{"4096", 4096, false},
		{"1B", 1, false},
		{"1KiB", 1024, false},
		{"8MiB", 8 << 20, false},
		{"64mib", 64 << 20, false},
		{"2GiB", 2 << 30, false},
		{"1TiB", 1 << 40, false},
		{"1KB", 1000, false},
		{"1MB", 1e6, false},
		{"3GB", 3e9, false},
		{"1.5KiB", 1536, false},
		{"0.5GB", 5e8, false},
		{" 8 MiB ", 8 << 20, false},
		{"64M", 64 << 20, false},
		{"1k", 1024, false},
		{"", 0, true},
		{"MiB", 0, true},
		{"-1", 0, true},
		{"-1MiB", 0, true},
		{"1.3B", 0, true},
		{"12XB", 0, true},
		{"1e3", 0, true},
		{"0x10", 0, true},
		{"NaN", 0, true},
		{"inf", 0, true},
		{"18446744073709551615", 18446744073709551615, false},
		{"18446744073709551616", 0, true},
		{"17179869184GiB", 0, true},
		{"1e30GB", 0, true},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			got, err := parseSize(tc.in)
			if tc.err {
				require.Error(t, err, "got %d", got)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tc.want, got)
		})
	}
}

func TestFormatSize(t *testing.T) {
	require.Equal(t, "0 B", formatSize(0))
	require.Equal(t, "1023 B", formatSize(1023))
	require.Equal(t, "1.0 KiB", formatSize(1024))
	require.Equal(t, "64.0 MiB", formatSize(64<<20))
	require.Equal(t, "1.5 GiB", formatSize(3<<29))
}

func TestSizeFlagString(t *testing.T) {
	for n, want := range map[uint64]string{0: "0", 1000: "1000", 1 << 10: "1KiB", 64 << 20: "64MiB", 3 << 30: "3GiB", 1 << 40: "1TiB", 1536: "1536"} {
		f := sizeFlag(n)
		require.Equal(t, want, f.String())
		var back sizeFlag
		require.NoError(t, back.Set(f.String()))
		require.Equal(t, f, back)
	}
}

func TestParseRate(t *testing.T) {
	tests := []struct {
		in   string
		want int64
		err  bool
	}{
		{"", 0, false},
		{"500000", 500000, false},
		{"100M", 100e6, false},
		{"1G", 1e9, false},
		{"2.5Gbit", 2.5e9, false},
		{"10mbps", 10e6, false},
		{"64k", 64e3, false},
		{"fast", 0, true},
		{"-1M", 0, true},
	}
	for _, tc := range tests {
		got, err := parseRate(tc.in)
		if tc.err {
			require.Error(t, err, tc.in)
			continue
		}
		require.NoError(t, err, tc.in)
		require.Equal(t, tc.want, got, tc.in)
	}
}
