package wire

// testify/require cannot be used yet: go.sum lacks the checksums of its
// dependencies (go-spew, go-difflib, yaml), and go.sum is not ours to edit.
// These few helpers cover what the tests need.

import (
	"errors"
	"fmt"
	"reflect"
	"testing"
)

func noErr(tb testing.TB, err error, msgAndArgs ...any) {
	tb.Helper()
	if err != nil {
		tb.Fatalf("unexpected error: %v %s", err, msg(msgAndArgs))
	}
}

func errIs(tb testing.TB, err, target error, msgAndArgs ...any) {
	tb.Helper()
	if !errors.Is(err, target) {
		tb.Fatalf("error %v does not wrap %v %s", err, target, msg(msgAndArgs))
	}
}

func equal(tb testing.TB, want, got any, msgAndArgs ...any) {
	tb.Helper()
	if !reflect.DeepEqual(want, got) {
		tb.Fatalf("not equal %s\nwant: %#v\ngot:  %#v", msg(msgAndArgs), want, got)
	}
}

func panics(tb testing.TB, f func(), msgAndArgs ...any) {
	tb.Helper()
	defer func() {
		if recover() == nil {
			tb.Fatalf("expected a panic %s", msg(msgAndArgs))
		}
	}()
	f()
}

func msg(msgAndArgs []any) string {
	if len(msgAndArgs) == 0 {
		return ""
	}
	if f, ok := msgAndArgs[0].(string); ok {
		return "(" + fmt.Sprintf(f, msgAndArgs[1:]...) + ")"
	}
	return ""
}
