package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"runtime"
	"runtime/pprof"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/flightline/flightline/transport"
)

// env is what a subcommand may touch of the outside world. Tests build one
// with buffers; main builds it from the process.
type env struct {
	stdout, stderr io.Writer
	// stderrTTY turns the progress bar on; stderrCols, when set, reports
	// that terminal's width now (0 when unknown).
	stderrTTY  bool
	stderrCols func() int
	// ready, when set, is told where a listener listens (tests use it to
	// learn the port of --addr 127.0.0.1:0).
	ready func(addr netip.AddrPort, pub transport.PublicKey)
	// metricsReady, when set, is told where --metrics serves.
	metricsReady func(addr net.Addr)
}

// lockedWriter serialises writes from concurrent transfers so output lines
// never interleave.
type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// usageError marks an error in the command line: exit code 2.
type usageError struct{ err error }

func (u usageError) Error() string { return u.err.Error() }
func (u usageError) Unwrap() error { return u.err }

func usagef(format string, args ...any) error {
	return usageError{fmt.Errorf(format, args...)}
}

// flagSet is a subcommand's FlagSet that reports errors to us instead of
// printing usage, so every failure is exactly one line.
type flagSet struct {
	*flag.FlagSet
	name, synopsis string
	e              *env
}

func newFlagSet(name, synopsis string, e *env) *flagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	// The flag package calls Usage on every parse error too; usage is
	// printed only for -h, by parse.
	fs.Usage = func() {}
	return &flagSet{FlagSet: fs, name: name, synopsis: synopsis, e: e}
}

// parse parses args, turning flag errors into usage errors. It returns
// errHelp after printing usage on stdout for -h.
func (f *flagSet) parse(args []string) error {
	err := f.Parse(args)
	if errors.Is(err, flag.ErrHelp) {
		fmt.Fprintf(f.e.stdout, "usage: flightline %s %s\n\nflags:\n", f.name, f.synopsis)
		f.SetOutput(f.e.stdout)
		f.PrintDefaults()
		f.SetOutput(io.Discard)
		return errHelp
	}
	if err != nil {
		return usageError{err}
	}
	return nil
}

// errHelp ends a subcommand successfully after -h printed its usage.
var errHelp = errors.New("help requested")

// commonFlags are on every subcommand that transfers data.
type commonFlags struct {
	json       bool
	cpuprofile string
	memprofile string
	verbose    bool
}

func (c *commonFlags) register(fs *flag.FlagSet) {
	fs.BoolVar(&c.json, "json", false, "print results as JSON objects on stdout")
	fs.StringVar(&c.cpuprofile, "cpuprofile", "", "write a CPU profile to `file`")
	fs.StringVar(&c.memprofile, "memprofile", "", "write a heap profile to `file` at exit")
	fs.BoolVar(&c.verbose, "v", false, "print transport log lines (datapath fallbacks) on stderr")
}

// startProfiles starts CPU profiling if asked; the returned function stops
// it and writes the heap profile. It is safe to call when nothing was asked.
func (c *commonFlags) startProfiles() (stop func() error, err error) {
	var cpu *os.File
	if c.cpuprofile != "" {
		cpu, err = os.Create(c.cpuprofile)
		if err != nil {
			return nil, fmt.Errorf("cpu profile: %w", err)
		}
		if err := pprof.StartCPUProfile(cpu); err != nil {
			cpu.Close()
			return nil, fmt.Errorf("cpu profile: %w", err)
		}
	}
	return func() error {
		var errs []error
		if cpu != nil {
			pprof.StopCPUProfile()
			if err := cpu.Close(); err != nil {
				errs = append(errs, fmt.Errorf("cpu profile: %w", err))
			}
		}
		if c.memprofile != "" {
			errs = append(errs, writeHeapProfile(c.memprofile))
		}
		return errors.Join(errs...)
	}, nil
}

func writeHeapProfile(path string) error {
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("heap profile: %w", err)
	}
	runtime.GC() // up-to-date statistics
	if err := pprof.Lookup("heap").WriteTo(f, 0); err != nil {
		f.Close()
		return fmt.Errorf("heap profile: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("heap profile: %w", err)
	}
	return nil
}

// logf returns the transport's Logf: stderr when verbose, else discard.
func (c *commonFlags) logf(w io.Writer, always bool) func(string, ...any) {
	if !c.verbose && !always {
		return nil
	}
	return func(format string, args ...any) {
		fmt.Fprintf(w, strings.TrimSuffix(format, "\n")+"\n", args...)
	}
}

// checkDatapath validates a --datapath value.
func checkDatapath(dp string) error {
	switch dp {
	case "auto", "udp", "xdp":
		return nil
	}
	return usagef("--datapath %q: want auto, udp or xdp", dp)
}

// loadPrivateKey reads a key file written by keygen. Like ssh, it refuses a
// key file that group or others may read or write: the key is the
// identity, and a readable copy lets anyone impersonate this side.
func loadPrivateKey(path string) (transport.PrivateKey, error) {
	f, err := os.Open(path)
	if err != nil {
		return transport.PrivateKey{}, fmt.Errorf("read key: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return transport.PrivateKey{}, fmt.Errorf("read key: %w", err)
	}
	if perm := st.Mode().Perm(); st.Mode().IsRegular() && perm&0o077 != 0 {
		return transport.PrivateKey{}, fmt.Errorf("key file %s: permissions %04o are too open: it must not be accessible by group or others (chmod 600 %s)", path, perm, path)
	}
	b, err := io.ReadAll(io.LimitReader(f, 4096))
	if err != nil {
		return transport.PrivateKey{}, fmt.Errorf("read key: %w", err)
	}
	k, err := transport.ParsePrivateKey(strings.TrimSpace(string(b)))
	if err != nil {
		return transport.PrivateKey{}, fmt.Errorf("key file %s: %w", path, err)
	}
	return k, nil
}

// parsePublicKeys parses a comma-separated list of public keys.
func parsePublicKeys(flagName, list string) ([]transport.PublicKey, error) {
	var keys []transport.PublicKey
	for _, s := range strings.Split(list, ",") {
		s = strings.TrimSpace(s)
		if s == "" {
			continue
		}
		k, err := transport.ParsePublicKey(s)
		if err != nil {
			return nil, usagef("--%s %q: %v", flagName, s, err)
		}
		keys = append(keys, k)
	}
	if len(keys) == 0 {
		return nil, usagef("--%s: no public keys given", flagName)
	}
	return keys, nil
}

// mbps is goodput in MB/s (10^6 bytes per second).
func mbps(bytes uint64, d time.Duration) float64 {
	if d <= 0 {
		return 0
	}
	return float64(bytes) / d.Seconds() / 1e6
}

// writeJSON prints v as one line of JSON. Runes that are unsafe on a
// terminal (see unsafeRune: DEL, C1 and bidirectional-text controls, which
// encoding/json leaves raw) are written as \u escapes: the same string to a
// JSON parser, inert to someone reading the output.
func writeJSON(w io.Writer, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encode json: %w", err)
	}
	_, err = w.Write(append(escapeJSONUnsafe(b), '\n'))
	return err
}

// escapeJSONUnsafe rewrites unsafe runes in encoded JSON as \uXXXX. Outside
// strings JSON has none, so every one it finds is inside a string.
func escapeJSONUnsafe(b []byte) []byte {
	out := make([]byte, 0, len(b))
	for len(b) > 0 {
		r, n := utf8.DecodeRune(b)
		if unsafeRune(r) {
			out = fmt.Appendf(out, "\\u%04x", r)
		} else {
			out = append(out, b[:n]...)
		}
		b = b[n:]
	}
	return out
}

// ms converts a duration to float milliseconds for JSON output.
func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// roundDur rounds d for display: µs precision below a second.
func roundDur(d time.Duration) time.Duration {
	if d < time.Second {
		return d.Round(time.Microsecond)
	}
	return d.Round(time.Millisecond)
}

// plural formats "1 file" / "2 files".
func plural(n int, noun string) string {
	if n == 1 {
		return fmt.Sprintf("%d %s", n, noun)
	}
	return fmt.Sprintf("%d %ss", n, noun)
}
