// Package runner runs one benchmark Spec as two processes: the peer's server
// side inside testnet host B's namespace and its client side inside host A's,
// each optionally pinned to one CPU, both bounded by the Spec's deadline.
//
// The child processes are this same executable re-run with an environment
// variable set (see IsChild and ChildMain): flightline-bench in production,
// the test binary in tests (its TestMain calls ChildMain), so the peers a
// child can run are exactly the ones linked into the parent.
package runner

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/flightline/flightline/bench/internal/peer"
	"github.com/flightline/flightline/testnet"
)

// Environment variables that turn a process into a child and carry its job.
const (
	envChild = "FLIGHTLINE_BENCH_CHILD" // "1" in a child
	envSpec  = "FLIGHTLINE_BENCH_SPEC"  // the Spec as JSON
)

// Lines a child writes on stdout. Everything else it has to say goes to
// stderr, which the parent forwards to Options.Log.
const (
	readyLine  = "FLIGHTLINE-BENCH-READY"
	resultLine = "FLIGHTLINE-BENCH-RESULT "
)

// grace is how long after the Spec's deadline a child may take to report
// before the parent kills it.
const grace = 5 * time.Second

// Options control how a run's processes are started.
type Options struct {
	// ServerCPU and ClientCPU pin each side's whole process to one CPU
	// (taskset, so GOMAXPROCS follows); -1 leaves it unpinned.
	ServerCPU, ClientCPU int
	// Log receives both children's stderr, each line prefixed with its side.
	// Default: discarded.
	Log io.Writer
	// Binary is the executable to re-run. Default: os.Executable().
	Binary string
}

// HarnessError is a run that failed in the harness — an invalid Spec, a
// child process that could not be started — rather than in the peer, so a
// caller can tell "this transport failed here" (a finding) from "the
// benchmark itself is broken" (always a failure).
type HarnessError struct{ Err error }

func (e *HarnessError) Error() string { return e.Err.Error() }
func (e *HarnessError) Unwrap() error { return e.Err }

// Unpinned is Options with neither side pinned.
func Unpinned() Options { return Options{ServerCPU: -1, ClientCPU: -1} }

// Run runs s: the server in n.B, then, once it is listening, the client in
// n.A. Addresses and interface names in s are filled in from n. It returns
// both sides' results; err joins every failure (a side's error, a process
// that crashed or overran the deadline), and is a *HarnessError when the
// harness failed before the peer could run.
func Run(ctx context.Context, n *testnet.Network, s peer.Spec, o Options) (client, server peer.Result, err error) {
	s.Server = netipAddrPort(n.B.Addr, s.Server.Port())
	s.Client = n.A.Addr
	s.ServerIfname, s.ClientIfname = n.B.Ifname, n.A.Ifname
	if err := s.Validate(); err != nil {
		return client, server, &HarnessError{err}
	}
	ctx, cancel := context.WithDeadline(ctx, s.Deadline.Add(grace))
	defer cancel()

	ss, cs := s, s
	ss.Side, cs.Side = peer.ServerSide, peer.ClientSide
	ss.CPUProfile, ss.MemProfile = sideFile(s.CPUProfile, "server"), sideFile(s.MemProfile, "server")
	cs.CPUProfile, cs.MemProfile = sideFile(s.CPUProfile, "client"), sideFile(s.MemProfile, "client")

	srv, err := start(ctx, n.B.NS, &ss, o.ServerCPU, o)
	if err != nil {
		return client, server, &HarnessError{fmt.Errorf("start server: %w", err)}
	}
	select {
	case <-srv.ready:
	case <-srv.done:
	case <-ctx.Done():
	}
	if !srv.isReady() {
		server = srv.wait()
		if server.Error == "" {
			server.Error = "server exited before it was ready"
		}
		return client, server, fmt.Errorf("server: %s", server.Error)
	}
	cli, err := start(ctx, n.A.NS, &cs, o.ClientCPU, o)
	if err != nil {
		srv.kill()
		server = srv.wait()
		return client, server, &HarnessError{fmt.Errorf("start client: %w", err)}
	}
	client = cli.wait()
	if client.Error != "" {
		// A failed client leaves the server waiting for data that will
		// never come; it has nothing more to measure.
		srv.killAfter(time.Second)
	}
	server = srv.wait()
	var errs []error
	if client.Error != "" {
		errs = append(errs, fmt.Errorf("client: %s", client.Error))
	}
	if server.Error != "" {
		errs = append(errs, fmt.Errorf("server: %s", server.Error))
	}
	return client, server, errors.Join(errs...)
}

// sideFile turns "dir/run.cpu.pprof" into "dir/run.server.cpu.pprof".
func sideFile(path, side string) string {
	if path == "" {
		return ""
	}
	dir, file := "", path
	if i := strings.LastIndexByte(path, '/'); i >= 0 {
		dir, file = path[:i+1], path[i+1:]
	}
	if i := strings.IndexByte(file, '.'); i > 0 {
		return dir + file[:i] + "." + side + file[i:]
	}
	return path + "." + side
}

// child is one started side.
type child struct {
	side    peer.Side
	cmd     *exec.Cmd
	ready   chan struct{}
	done    chan struct{}
	readyMu sync.Mutex
	isRdy   bool
	result  peer.Result
	gotRes  bool
	waitErr error
	stderr  bytes.Buffer // last lines, for the error message
}

func start(ctx context.Context, ns string, s *peer.Spec, cpu int, o Options) (*child, error) {
	bin := o.Binary
	if bin == "" {
		var err error
		if bin, err = os.Executable(); err != nil {
			return nil, fmt.Errorf("find own executable: %w", err)
		}
	}
	js, err := json.Marshal(s)
	if err != nil {
		return nil, err
	}
	var argv []string
	if cpu >= 0 {
		argv = append(argv, "taskset", "-c", strconv.Itoa(cpu))
	}
	argv = append(argv, "ip", "netns", "exec", ns, bin)
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Env = append(os.Environ(), envChild+"=1", envSpec+"="+string(js))
	cmd.WaitDelay = time.Second
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return nil, err
	}
	c := &child{side: s.Side, cmd: cmd, ready: make(chan struct{}), done: make(chan struct{})}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("%s: %w", strings.Join(argv, " "), err)
	}
	var wg sync.WaitGroup
	wg.Go(func() { c.readStdout(stdout) })
	wg.Go(func() { c.readStderr(stderr, o.Log) })
	go func() {
		wg.Wait()
		c.waitErr = cmd.Wait()
		close(c.done)
	}()
	return c, nil
}

func (c *child) readStdout(r io.Reader) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 256<<20) // a ping result carries every RTT
	for sc.Scan() {
		line := sc.Text()
		switch {
		case line == readyLine:
			c.readyMu.Lock()
			if !c.isRdy {
				c.isRdy = true
				close(c.ready)
			}
			c.readyMu.Unlock()
		case strings.HasPrefix(line, resultLine):
			var r peer.Result
			if err := json.Unmarshal([]byte(line[len(resultLine):]), &r); err != nil {
				c.result.Error = fmt.Sprintf("undecodable result: %v", err)
			} else {
				c.result, c.gotRes = r, true
			}
		}
	}
}

func (c *child) readStderr(r io.Reader, log io.Writer) {
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		line := sc.Text()
		if log != nil {
			fmt.Fprintf(log, "[%s] %s\n", c.side, line)
		}
		c.stderr.WriteString(line + "\n")
		if c.stderr.Len() > 8<<10 {
			c.stderr.Next(c.stderr.Len() - 4<<10)
		}
	}
}

func (c *child) isReady() bool {
	c.readyMu.Lock()
	defer c.readyMu.Unlock()
	return c.isRdy
}

func (c *child) kill() {
	if c.cmd.Process != nil {
		_ = c.cmd.Process.Kill()
	}
}

func (c *child) killAfter(d time.Duration) {
	select {
	case <-c.done:
	case <-time.After(d):
		c.kill()
	}
}

// wait returns the side's result once the process has exited; a process
// that exited without reporting, or was killed, gets an Error saying so with
// the tail of its stderr.
func (c *child) wait() peer.Result {
	<-c.done
	r := c.result
	r.Side = c.side
	if !c.gotRes && r.Error == "" {
		msg := "exited without a result"
		if c.waitErr != nil {
			msg = fmt.Sprintf("exited without a result: %v", c.waitErr)
		}
		if tail := strings.TrimSpace(lastLines(c.stderr.String(), 5)); tail != "" {
			msg += "; stderr: " + tail
		}
		r.Error = msg
	}
	return r
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, " | ")
}
