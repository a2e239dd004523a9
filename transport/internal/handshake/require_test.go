package handshake

import (
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
)

// require is a minimal stand-in for testify/require with the same call
// shapes, so switching back is a one-line import change. testify cannot be
// used yet: go.sum lacks its go.yaml.in/yaml/v3 dependency and go.sum is not
// this package's to edit.
var require requireT

type requireT struct{}

func msgf(msg []any) string {
	if len(msg) == 0 {
		return ""
	}
	if f, ok := msg[0].(string); ok {
		return ": " + fmt.Sprintf(f, msg[1:]...)
	}
	return ": " + fmt.Sprint(msg...)
}

func (requireT) NoError(t testing.TB, err error, msg ...any) {
	t.Helper()
	if err != nil {
		t.Fatalf("unexpected error: %v%s", err, msgf(msg))
	}
}

func (requireT) Error(t testing.TB, err error, msg ...any) {
	t.Helper()
	if err == nil {
		t.Fatalf("expected an error%s", msgf(msg))
	}
}

func (requireT) ErrorIs(t testing.TB, err, target error, msg ...any) {
	t.Helper()
	if !errors.Is(err, target) {
		t.Fatalf("error %v does not wrap %v%s", err, target, msgf(msg))
	}
}

func (requireT) Equal(t testing.TB, want, got any, msg ...any) {
	t.Helper()
	if !reflect.DeepEqual(want, got) {
		t.Fatalf("not equal%s\nwant: %#v\n got: %#v", msgf(msg), want, got)
	}
}

func (requireT) NotEqual(t testing.TB, a, b any, msg ...any) {
	t.Helper()
	if reflect.DeepEqual(a, b) {
		t.Fatalf("should differ%s: %#v", msgf(msg), a)
	}
}

func isNil(v any) bool {
	if v == nil {
		return true
	}
	rv := reflect.ValueOf(v)
	switch rv.Kind() {
	case reflect.Pointer, reflect.Slice, reflect.Map, reflect.Func, reflect.Interface, reflect.Chan:
		return rv.IsNil()
	}
	return false
}

func (requireT) Nil(t testing.TB, v any, msg ...any) {
	t.Helper()
	if !isNil(v) {
		t.Fatalf("expected nil, got %#v%s", v, msgf(msg))
	}
}

func (requireT) NotNil(t testing.TB, v any, msg ...any) {
	t.Helper()
	if isNil(v) {
		t.Fatalf("expected non-nil%s", msgf(msg))
	}
}

func (requireT) Len(t testing.TB, v any, n int, msg ...any) {
	t.Helper()
	if l := reflect.ValueOf(v).Len(); l != n {
		t.Fatalf("length %d, want %d%s", l, n, msgf(msg))
	}
}

func (requireT) True(t testing.TB, b bool, msg ...any) {
	t.Helper()
	if !b {
		t.Fatalf("expected true%s", msgf(msg))
	}
}

func (requireT) False(t testing.TB, b bool, msg ...any) {
	t.Helper()
	if b {
		t.Fatalf("expected false%s", msgf(msg))
	}
}

func (requireT) Contains(t testing.TB, s, sub string, msg ...any) {
	t.Helper()
	if !strings.Contains(s, sub) {
		t.Fatalf("%q does not contain %q%s", s, sub, msgf(msg))
	}
}

func (requireT) LessOrEqual(t testing.TB, a, b int, msg ...any) {
	t.Helper()
	if a > b {
		t.Fatalf("%d > %d%s", a, b, msgf(msg))
	}
}
