// Command flightline moves files over the flightline transport and
// demonstrates it: keygen makes identities, listen receives files, send
// sends them, demo measures a transfer in one process (on a veth pair in
// network namespaces when root), and testnet manages such networks.
//
// Every failure is one line on stderr. Exit codes: 0 success, 1 runtime
// failure (I/O, network, digest mismatch), 2 bad command line.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"golang.org/x/sys/unix"
)

const topUsage = `usage: flightline <command> [flags] [args]

commands:
  keygen    create an identity key
  listen    receive files
  send      send files
  demo      transfer random data through a listener and a sender in one process
  testnet   manage veth test networks (up, down, gc)

Run 'flightline <command> -h' for a command's flags.
`

type command func(ctx context.Context, args []string, e *env) error

var commands = map[string]command{
	"keygen":  runKeygen,
	"listen":  runListen,
	"send":    runSend,
	"demo":    runDemo,
	"testnet": runTestnet,
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	go func() {
		// After the first signal starts a graceful shutdown, a second one
		// kills the process the default way.
		<-ctx.Done()
		stop()
	}()
	e := &env{stdout: os.Stdout, stderr: os.Stderr, stderrTTY: isTerminal(os.Stderr),
		stderrCols: func() int { return terminalCols(os.Stderr) }}
	code := run(ctx, os.Args[1:], e)
	stop()
	os.Exit(code)
}

// run dispatches to a subcommand and maps its error to one stderr line and
// an exit code.
func run(ctx context.Context, args []string, e *env) int {
	if len(args) == 0 {
		fmt.Fprint(e.stderr, topUsage)
		return 2
	}
	name := args[0]
	if name == "-h" || name == "--help" || name == "help" {
		fmt.Fprint(e.stdout, topUsage)
		return 0
	}
	cmd, ok := commands[name]
	if !ok {
		fmt.Fprintf(e.stderr, "flightline: unknown command %q (commands: keygen, listen, send, demo, testnet)\n", name)
		return 2
	}
	err := cmd(ctx, args[1:], e)
	switch {
	case err == nil, errors.Is(err, errHelp):
		return 0
	case errors.As(err, new(usageError)):
		fmt.Fprintf(e.stderr, "flightline %s: %v (see 'flightline %s -h')\n", name, err, name)
		return 2
	default:
		fmt.Fprintf(e.stderr, "flightline %s: %v\n", name, err)
		return 1
	}
}

// isTerminal reports whether f is a terminal (the progress bar is only drawn
// on one).
func isTerminal(f *os.File) bool {
	_, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
	return err == nil
}

// terminalCols is f's terminal width in columns, 0 when f is no terminal or
// does not say.
func terminalCols(f *os.File) int {
	ws, err := unix.IoctlGetWinsize(int(f.Fd()), unix.TIOCGWINSZ)
	if err != nil {
		return 0
	}
	return int(ws.Col)
}
