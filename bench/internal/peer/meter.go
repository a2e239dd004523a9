package peer

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"runtime"
	"runtime/pprof"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// Phase is a side's measured phase: when it ran (CLOCK_MONOTONIC, which is
// machine-wide, so the two sides' phases can be compared) and the CPU time
// spent in it, by this process and by the whole machine.
type Phase struct {
	StartNS int64 `json:"start_ns"`
	EndNS   int64 `json:"end_ns"`
	// UserSec and SysSec are this process's CPU seconds (getrusage
	// RUSAGE_SELF) during the phase.
	UserSec float64 `json:"user_s"`
	SysSec  float64 `json:"sys_s"`
	// MachineBusySec is the CPU seconds all CPUs spent not idle (and not in
	// iowait) during the phase, from /proc/stat: it includes softirq work the
	// kernel does outside any process, and the other side. MachineSec is the
	// CPU seconds that elapsed on all CPUs (busy or not).
	MachineBusySec float64 `json:"machine_busy_s"`
	MachineSec     float64 `json:"machine_s"`
}

// Seconds is the phase's wall-clock length.
func (p Phase) Seconds() float64 { return float64(p.EndNS-p.StartNS) / 1e9 }

// ProcessSec is this process's CPU seconds in the phase.
func (p Phase) ProcessSec() float64 { return p.UserSec + p.SysSec }

// Meter measures one phase. Start it right before the work it measures and
// Stop it right after; it also starts and stops the Spec's CPU profile so the
// profile covers exactly the phase, and writes the heap profile at Stop.
type Meter struct {
	spec    *Spec
	start   int64
	ru      unix.Rusage
	busy    float64
	total   float64
	profile *os.File
}

// StartMeter begins a phase. A CPU profile that cannot be started is an
// error: the caller asked for it.
func StartMeter(s *Spec) (*Meter, error) {
	m := &Meter{spec: s}
	if s != nil && s.CPUProfile != "" {
		f, err := os.Create(s.CPUProfile)
		if err != nil {
			return nil, fmt.Errorf("cpu profile: %w", err)
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			f.Close()
			return nil, fmt.Errorf("cpu profile: %w", err)
		}
		m.profile = f
	}
	m.busy, m.total = machineCPU()
	if err := unix.Getrusage(unix.RUSAGE_SELF, &m.ru); err != nil {
		return nil, fmt.Errorf("getrusage: %w", err)
	}
	m.start = Monotonic()
	return m, nil
}

// Stop ends the phase and returns it. It is safe to call more than once;
// only the first call measures.
func (m *Meter) Stop() (Phase, error) {
	end := Monotonic()
	var ru unix.Rusage
	if err := unix.Getrusage(unix.RUSAGE_SELF, &ru); err != nil {
		return Phase{}, fmt.Errorf("getrusage: %w", err)
	}
	busy, total := machineCPU()
	p := Phase{
		StartNS:        m.start,
		EndNS:          end,
		UserSec:        tv(ru.Utime) - tv(m.ru.Utime),
		SysSec:         tv(ru.Stime) - tv(m.ru.Stime),
		MachineBusySec: busy - m.busy,
		MachineSec:     total - m.total,
	}
	var err error
	if m.profile != nil {
		pprof.StopCPUProfile()
		err = m.profile.Close()
		m.profile = nil
	}
	if m.spec != nil && m.spec.MemProfile != "" {
		if e := writeHeapProfile(m.spec.MemProfile); e != nil && err == nil {
			err = e
		}
		m.spec = nil
	}
	return p, err
}

func writeHeapProfile(path string) error {
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("heap profile: %w", err)
	}
	runtime.GC()
	if err := pprof.WriteHeapProfile(f); err != nil {
		f.Close()
		return fmt.Errorf("heap profile: %w", err)
	}
	return f.Close()
}

// Monotonic is CLOCK_MONOTONIC in nanoseconds: the same clock in every
// process on the machine.
func Monotonic() int64 {
	var ts unix.Timespec
	_ = unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts)
	return ts.Nano()
}

func tv(t unix.Timeval) float64 { return float64(t.Sec) + float64(t.Usec)/1e6 }

// clockTicks is USER_HZ, the unit of /proc/stat. It is 100 on every Linux
// architecture Go supports.
const clockTicks = 100

// machineCPU returns the busy and total CPU seconds of all CPUs since boot
// from the first line of /proc/stat; (0, 0) when it cannot be read.
func machineCPU() (busy, total float64) {
	data, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, 0
	}
	b, t, ok := parseProcStat(data)
	if !ok {
		return 0, 0
	}
	return b / clockTicks, t / clockTicks
}

// parseProcStat reads the aggregate "cpu" line: user nice system idle iowait
// irq softirq steal guest guest_nice. Guest time is already included in user
// and nice, so it is not added again; idle and iowait are not busy.
func parseProcStat(data []byte) (busy, total float64, ok bool) {
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 5 || f[0] != "cpu" {
			continue
		}
		var v [8]float64
		for i := 0; i < 8 && i+1 < len(f); i++ {
			x, err := strconv.ParseFloat(f[i+1], 64)
			if err != nil {
				return 0, 0, false
			}
			v[i] = x
		}
		for i, x := range v {
			total += x
			if i != 3 && i != 4 { // idle, iowait
				busy += x
			}
		}
		return busy, total, true
	}
	return 0, 0, false
}

// RSS is this process's resident set size in bytes (VmRSS), or 0.
func RSS() int64 {
	data, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for line := range strings.SplitSeq(string(data), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			f := strings.Fields(rest)
			if len(f) >= 1 {
				kb, _ := strconv.ParseInt(f[0], 10, 64)
				return kb << 10
			}
		}
	}
	return 0
}
