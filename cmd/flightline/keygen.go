package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"

	"github.com/flightline/flightline/transport"
)

// runKeygen creates an identity. With -o the private key goes to a new file
// (mode 0600) and the public key to stdout; without it the private key is
// printed on stdout and the public key on stderr, so `keygen > key` works.
func runKeygen(_ context.Context, args []string, e *env) error {
	fset := newFlagSet("keygen", "[-o FILE] [--force]", e)
	out := fset.String("o", "", "write the private key to `file` (mode 0600) instead of stdout")
	force := fset.Bool("force", false, "overwrite an existing -o file")
	if err := fset.parse(args); err != nil {
		return err
	}
	if fset.NArg() > 0 {
		return usagef("unexpected argument %q", fset.Arg(0))
	}
	k, err := transport.GenerateKey()
	if err != nil {
		return fmt.Errorf("generate key: %w", err)
	}
	if *out == "" {
		fmt.Fprintln(e.stdout, k.String())
		fmt.Fprintf(e.stderr, "public key: %s\n", k.Public())
		return nil
	}
	if err := writeKeyFile(*out, k, *force); err != nil {
		return err
	}
	fmt.Fprintln(e.stdout, k.Public().String())
	return nil
}

// writeKeyFile writes k in base64 to path with mode 0600. Without force an
// existing file is an error: silently replacing an identity breaks every
// peer that pinned it.
func writeKeyFile(path string, k transport.PrivateKey, force bool) error {
	flags := os.O_WRONLY | os.O_CREATE | os.O_EXCL
	if force {
		flags = os.O_WRONLY | os.O_CREATE | os.O_TRUNC
	}
	f, err := os.OpenFile(path, flags, 0o600)
	if errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("write key: %s exists (use --force to replace it)", path)
	}
	if err != nil {
		return fmt.Errorf("write key: %w", err)
	}
	// An existing file opened with --force keeps its mode; tighten it.
	if err := f.Chmod(0o600); err != nil {
		f.Close()
		return fmt.Errorf("write key: %w", err)
	}
	if _, err := fmt.Fprintln(f, k.String()); err != nil {
		f.Close()
		return fmt.Errorf("write key: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("write key: %w", err)
	}
	return nil
}
