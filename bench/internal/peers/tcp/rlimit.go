package tcp

import (
	"fmt"

	"golang.org/x/sys/unix"
)

// raiseNofile makes sure this process may hold need file descriptors: one
// per TCP connection, so a 10k-connection Scale run needs more than the
// usual 1024 soft limit. Go already raises the soft limit to the hard one
// at startup; when the hard limit is too low too, root (CAP_SYS_RESOURCE)
// can raise it, up to fs.nr_open.
func raiseNofile(need uint64) error {
	var lim unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &lim); err != nil {
		return fmt.Errorf("getrlimit RLIMIT_NOFILE: %w", err)
	}
	if lim.Cur >= need {
		return nil
	}
	want := unix.Rlimit{Cur: need, Max: max(lim.Max, need)}
	if err := unix.Setrlimit(unix.RLIMIT_NOFILE, &want); err != nil {
		return fmt.Errorf("need %d file descriptors, RLIMIT_NOFILE is %d (hard %d) and cannot be raised: %w",
			need, lim.Cur, lim.Max, err)
	}
	return nil
}
