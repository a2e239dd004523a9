package peer

import (
	"context"
	"errors"
	"fmt"
	"io"
)

// CtxErr prefers ctx's error when ctx has ended: the peer closed its
// sockets because of the deadline, and "deadline exceeded" says why where
// "use of closed connection" would not. The original error stays wrapped.
func CtxErr(ctx context.Context, err error) error {
	if ctx.Err() == nil {
		return err
	}
	cause := context.Cause(ctx)
	if err == nil || errors.Is(err, cause) {
		return cause
	}
	return fmt.Errorf("%w (%w)", cause, err)
}

// ExpectEOF reads the end of a stream that must carry nothing more.
func ExpectEOF(r io.Reader) error {
	var b [1]byte
	n, err := r.Read(b[:])
	switch {
	case n > 0:
		return errors.New("stream carries more than one message")
	case err == io.EOF:
		return nil
	case err == nil:
		return errors.New("empty read before end of stream")
	}
	return fmt.Errorf("read end of stream: %w", err)
}
