package testnet

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
)

// Prefix starts every namespace and interface name the harness creates.
// A network's id is Prefix plus 4 hex digits (its subnet number); namespaces
// are id+"a", id+"b", id+"m" and interfaces id+"a", id+"b", id+"ma", id+"mb"
// (at most 10 characters, well under IFNAMSIZ-1 = 15).
const Prefix = "fltn"

// LockDir holds one lock file per live network. A network keeps an exclusive
// flock on its file until Close; the kernel drops it when the process dies, so
// GC can tell live networks (of any process) from leftovers.
const LockDir = "/run/flightline-testnet"

// netnsDir is where `ip netns` bind-mounts named namespaces.
const netnsDir = "/var/run/netns"

// reservation is a network id with its held lock file.
type reservation struct {
	id   string
	num  uint16 // subnet number: IPv4 10.num>>8.num&255.0/24
	lock *os.File
}

// reserve picks a free network number and locks it. Numbers are random so
// that concurrent test processes rarely even try the same one; the flock
// settles the rare collision (in this or another process). Leftovers of a
// killed run under the same number are deleted first.
func reserve(rng *rand.Rand) (*reservation, error) {
	if err := os.MkdirAll(LockDir, 0o755); err != nil {
		return nil, fmt.Errorf("create lock dir: %w", err)
	}
	for range 64 {
		num := uint16(rng.Uint32())
		id := fmt.Sprintf("%s%04x", Prefix, num)
		f, ok, err := tryLock(filepath.Join(LockDir, id+".lock"))
		if err != nil {
			return nil, err
		}
		if !ok {
			continue
		}
		for _, role := range []string{"a", "b", "m"} {
			if _, err := os.Stat(filepath.Join(netnsDir, id+role)); err == nil {
				if err := deleteNetns(id + role); err != nil {
					_ = f.Close()
					return nil, fmt.Errorf("delete stale namespace: %w", err)
				}
			}
		}
		return &reservation{id: id, num: num, lock: f}, nil
	}
	return nil, errors.New("reserve network id: 64 random ids were all in use")
}

// tryLock opens (creating) path and takes an exclusive non-blocking flock.
// ok is false when another open file (in any process) holds the lock.
func tryLock(path string) (f *os.File, ok bool, err error) {
	f, err = os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, false, fmt.Errorf("open lock file: %w", err)
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		_ = f.Close()
		if errors.Is(err, unix.EWOULDBLOCK) {
			return nil, false, nil
		}
		return nil, false, fmt.Errorf("lock %s: %w", path, err)
	}
	return f, true, nil
}

// release deletes the lock file and then drops the lock. Deleting first means
// a concurrent reserve of the same id either fails to lock (we still hold it)
// or creates a fresh file.
func (r *reservation) release() {
	_ = os.Remove(r.lock.Name())
	_ = r.lock.Close()
}

// GC deletes stale namespaces whose names start with prefix: those whose
// network's lock file is not held by a live process (left by killed runs), and
// any with the prefix that the harness cannot have named. Namespaces of live
// networks, in this or other processes, are left alone. It returns the names
// it deleted. Pass Prefix unless testing.
func GC(prefix string) ([]string, error) {
	if prefix == "" {
		return nil, errors.New("testnet: GC with empty prefix would match every namespace")
	}
	entries, err := os.ReadDir(netnsDir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list namespaces: %w", err)
	}
	var deleted []string
	var errs []error
	for _, e := range entries {
		name := e.Name()
		if !strings.HasPrefix(name, prefix) {
			continue
		}
		id := name
		if isHarnessName(name) {
			id = name[:len(Prefix)+4]
		}
		lockPath := filepath.Join(LockDir, id+".lock")
		f, ok, err := tryLock(lockPath)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if !ok {
			continue // held by a live network
		}
		if err := deleteNetns(name); err != nil {
			errs = append(errs, err)
		} else {
			deleted = append(deleted, name)
		}
		_ = os.Remove(lockPath)
		_ = f.Close()
	}
	return deleted, errors.Join(errs...)
}

// isHarnessName reports whether name looks like id+role as reserve makes them.
func isHarnessName(name string) bool {
	if len(name) != len(Prefix)+5 || !strings.HasPrefix(name, Prefix) {
		return false
	}
	for _, c := range name[len(Prefix) : len(Prefix)+4] {
		if !strings.ContainsRune("0123456789abcdef", c) {
			return false
		}
	}
	return strings.ContainsRune("abm", rune(name[len(name)-1]))
}
