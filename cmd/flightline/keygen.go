package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

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
// peer that pinned it. With force the key goes to a new file in the same
// directory that is then renamed over path: the rename replaces path
// itself, so a symlink (or hard link) planted at path is never followed
// and its target never overwritten.
func writeKeyFile(path string, k transport.PrivateKey, force bool) error {
	if !force {
		// O_EXCL fails on any existing name, symlinks included.
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if errors.Is(err, fs.ErrExist) {
			return fmt.Errorf("write key: %s exists (use --force to replace it)", path)
		}
		if err != nil {
			return fmt.Errorf("write key: %w", err)
		}
		return finishKeyFile(f, k)
	}
	if st, err := os.Lstat(path); err == nil && st.IsDir() {
		return fmt.Errorf("write key: %s is a directory", path)
	}
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("write key: %w", err)
	}
	tmp := f.Name()
	if err := finishKeyFile(f, k); err != nil {
		os.Remove(tmp)
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("write key: %w", err)
	}
	return nil
}

// finishKeyFile writes k into the new file f, mode 0600, and closes it.
func finishKeyFile(f *os.File, k transport.PrivateKey) error {
	if err := f.Chmod(0o600); err != nil { // CreateTemp already uses 0600; be explicit
		f.Close()
		return fmt.Errorf("write key: %w", err)
	}
	if _, err := fmt.Fprintln(f, k.String()); err != nil {
		f.Close()
		return fmt.Errorf("write key: %w", err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("write key: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("write key: %w", err)
	}
	return nil
}
