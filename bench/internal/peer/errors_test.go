package peer

import (
	"context"
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestCtxErr(t *testing.T) {
	closed := errors.New("use of closed connection")
	require.Equal(t, closed, CtxErr(context.Background(), closed), "live ctx: the error as is")
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	err := CtxErr(ctx, closed)
	require.ErrorIs(t, err, context.Canceled, "ended ctx says why")
	require.ErrorIs(t, err, closed, "and keeps the original")
	require.Equal(t, context.Canceled, CtxErr(ctx, context.Canceled), "no doubled message")
}

func TestExpectEOF(t *testing.T) {
	require.NoError(t, ExpectEOF(strings.NewReader("")))
	require.ErrorContains(t, ExpectEOF(strings.NewReader("x")), "more than one message")
	require.ErrorIs(t, ExpectEOF(errReader{io.ErrClosedPipe}), io.ErrClosedPipe)
}

type errReader struct{ err error }

func (r errReader) Read([]byte) (int, error) { return 0, r.err }
