package memlink

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

func (requireT) ErrorIs(t testing.TB, err, target error, msg ...any) {
	t.Helper()
	if !errors.Is(err, target) {
		t.Fatalf("error %v is not %v%s", err, target, msgf(msg))
	}
}

func (requireT) Equal(t testing.TB, want, got any, msg ...any) {
	t.Helper()
	if !reflect.DeepEqual(want, got) {
		t.Fatalf("not equal:\nwant %#v\ngot  %#v%s", want, got, msgf(msg))
	}
}

// EqualValues compares after converting got to want's type, like testify.
func (requireT) EqualValues(t testing.TB, want, got any, msg ...any) {
	t.Helper()
	wv, gv := reflect.ValueOf(want), reflect.ValueOf(got)
	if gv.IsValid() && wv.IsValid() && gv.Type().ConvertibleTo(wv.Type()) {
		gv = gv.Convert(wv.Type())
	}
	if !wv.IsValid() || !gv.IsValid() || !reflect.DeepEqual(wv.Interface(), gv.Interface()) {
		t.Fatalf("not equal values: want %v, got %v%s", want, got, msgf(msg))
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

func (requireT) Len(t testing.TB, v any, n int, msg ...any) {
	t.Helper()
	if l := reflect.ValueOf(v).Len(); l != n {
		t.Fatalf("length %d, want %d%s", l, n, msgf(msg))
	}
}

func (requireT) Empty(t testing.TB, v any, msg ...any) {
	t.Helper()
	if l := reflect.ValueOf(v).Len(); l != 0 {
		t.Fatalf("expected empty, got %d elements: %v%s", l, v, msgf(msg))
	}
}

func (requireT) Contains(t testing.TB, s, sub string, msg ...any) {
	t.Helper()
	if !strings.Contains(s, sub) {
		t.Fatalf("%q does not contain %q%s", s, sub, msgf(msg))
	}
}

func (requireT) Zero(t testing.TB, v any, msg ...any) {
	t.Helper()
	if v != nil && !reflect.ValueOf(v).IsZero() {
		t.Fatalf("expected zero, got %v%s", v, msgf(msg))
	}
}

func (requireT) NotZero(t testing.TB, v any, msg ...any) {
	t.Helper()
	if v == nil || reflect.ValueOf(v).IsZero() {
		t.Fatalf("expected non-zero, got %v%s", v, msgf(msg))
	}
}

// num converts any integer or float to float64 for ordered comparisons.
func num(v any) float64 {
	rv := reflect.ValueOf(v)
	switch {
	case rv.CanInt():
		return float64(rv.Int())
	case rv.CanUint():
		return float64(rv.Uint())
	case rv.CanFloat():
		return rv.Float()
	}
	panic(fmt.Sprintf("not a number: %T", v))
}

func (requireT) Positive(t testing.TB, v any, msg ...any) {
	t.Helper()
	if num(v) <= 0 {
		t.Fatalf("expected positive, got %v%s", v, msgf(msg))
	}
}

func (requireT) Less(t testing.TB, a, b any, msg ...any) {
	t.Helper()
	if !(num(a) < num(b)) {
		t.Fatalf("expected %v < %v%s", a, b, msgf(msg))
	}
}

func (requireT) LessOrEqual(t testing.TB, a, b any, msg ...any) {
	t.Helper()
	if !(num(a) <= num(b)) {
		t.Fatalf("expected %v <= %v%s", a, b, msgf(msg))
	}
}

func (requireT) GreaterOrEqual(t testing.TB, a, b any, msg ...any) {
	t.Helper()
	if !(num(a) >= num(b)) {
		t.Fatalf("expected %v >= %v%s", a, b, msgf(msg))
	}
}

func (requireT) InDelta(t testing.TB, want, got, delta float64, msg ...any) {
	t.Helper()
	if d := want - got; d > delta || d < -delta {
		t.Fatalf("%v not within %v of %v%s", got, delta, want, msgf(msg))
	}
}

func (requireT) NotEqual(t testing.TB, a, b any, msg ...any) {
	t.Helper()
	if reflect.DeepEqual(a, b) {
		t.Fatalf("expected values to differ: %v%s", a, msgf(msg))
	}
}
