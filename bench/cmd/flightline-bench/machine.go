package main

import (
	"fmt"
	"os"
	"runtime"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// header is the top of results.md: where and how the numbers were made.
func header(o options, started time.Time, took time.Duration, plots []string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "# flightline-bench results\n\n")
	fmt.Fprintf(&b, "- date: %s (took %s)\n", started.UTC().Format(time.RFC3339), took.Round(time.Second))
	fmt.Fprintf(&b, "- machine: %s\n", machine())
	fmt.Fprintf(&b, "- go: %s %s/%s\n", runtime.Version(), runtime.GOOS, runtime.GOARCH)
	fmt.Fprintf(&b, "- plan: %s, %d repetitions, medians quoted; bulk %d MiB, loss %d MiB, ping %d round trips, scale %d connections\n",
		o.Plan, o.Reps, o.Sizes.BulkBytes>>20, o.Sizes.LossBytes>>20, o.Sizes.PingMessages, o.Sizes.ScaleConns)
	fmt.Fprintf(&b, "- reproduce: `cd bench && sudo go run ./cmd/flightline-bench %s`\n", strings.Join(o.Args, " "))
	if len(plots) > 0 {
		b.WriteString("\n")
		for _, p := range plots {
			fmt.Fprintf(&b, "![%s](%s)\n", strings.TrimSuffix(p, ".png"), p)
		}
	}
	b.WriteString("\n")
	return b.String()
}

// machine describes the CPU, core count, memory and kernel.
func machine() string {
	model := "unknown CPU"
	if data, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for line := range strings.SplitSeq(string(data), "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				model = strings.TrimSpace(v)
				break
			}
		}
	}
	var si unix.Sysinfo_t
	mem := ""
	if unix.Sysinfo(&si) == nil {
		mem = fmt.Sprintf(", %.0f GiB RAM", float64(si.Totalram)*float64(si.Unit)/(1<<30))
	}
	var u unix.Utsname
	kernel := ""
	if unix.Uname(&u) == nil {
		kernel = ", Linux " + unix.ByteSliceToString(u.Release[:])
	}
	return fmt.Sprintf("%s, %d CPUs%s%s", model, runtime.NumCPU(), mem, kernel)
}
