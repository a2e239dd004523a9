package testnet

import (
	"fmt"
	"math"
	"reflect"
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

func (requireT) Equal(t testing.TB, want, got any, msg ...any) {
	t.Helper()
	if !reflect.DeepEqual(want, got) {
		t.Fatalf("not equal:\nwant %#v\ngot  %#v%s", want, got, msgf(msg))
	}
}

func (requireT) NotEqual(t testing.TB, a, b any, msg ...any) {
	t.Helper()
	if reflect.DeepEqual(a, b) {
		t.Fatalf("should differ: %#v%s", a, msgf(msg))
	}
}

func (requireT) True(t testing.TB, v bool, msg ...any) {
	t.Helper()
	if !v {
		t.Fatalf("expected true%s", msgf(msg))
	}
}

func (requireT) False(t testing.TB, v bool, msg ...any) {
	t.Helper()
	if v {
		t.Fatalf("expected false%s", msgf(msg))
	}
}

func (requireT) InDelta(t testing.TB, want, got, delta float64, msg ...any) {
	t.Helper()
	if math.IsNaN(got) || math.Abs(want-got) > delta {
		t.Fatalf("%v not within %v of %v%s", got, delta, want, msgf(msg))
	}
}

func (requireT) Contains(t testing.TB, list []string, s string, msg ...any) {
	t.Helper()
	for _, x := range list {
		if x == s {
			return
		}
	}
	t.Fatalf("%q not in %q%s", s, list, msgf(msg))
}

func (requireT) NotContains(t testing.TB, list []string, s string, msg ...any) {
	t.Helper()
	for _, x := range list {
		if x == s {
			t.Fatalf("%q unexpectedly in %q%s", s, list, msgf(msg))
		}
	}
}
