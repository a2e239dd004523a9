package congestion

import (
	"errors"
	"fmt"
	"math"
	"reflect"
	"testing"
)

// require is a minimal stand-in for testify/require with the same call shape,
// so the tests can switch back by changing one import. testify cannot be
// used today: its go.yaml.in/yaml/v3 dependency is missing from go.sum, which
// this package may not edit.
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

func (requireT) Equal(t testing.TB, want, got any, msg ...any) {
	t.Helper()
	if !reflect.DeepEqual(want, got) {
		t.Fatalf("not equal%s\nwant: %v (%T)\ngot:  %v (%T)", msgf(msg), want, want, got, got)
	}
}

func (requireT) True(t testing.TB, v bool, msg ...any) {
	t.Helper()
	if !v {
		t.Fatalf("want true%s", msgf(msg))
	}
}

func (requireT) False(t testing.TB, v bool, msg ...any) {
	t.Helper()
	if v {
		t.Fatalf("want false%s", msgf(msg))
	}
}

func (requireT) Zero(t testing.TB, v any, msg ...any) {
	t.Helper()
	if v != nil && !reflect.ValueOf(v).IsZero() {
		t.Fatalf("want zero, got %v%s", v, msgf(msg))
	}
}

func toFloat(t testing.TB, v any) float64 {
	t.Helper()
	rv := reflect.ValueOf(v)
	switch {
	case rv.CanInt():
		return float64(rv.Int())
	case rv.CanUint():
		return float64(rv.Uint())
	case rv.CanFloat():
		return rv.Float()
	}
	t.Fatalf("not a number: %v (%T)", v, v)
	return 0
}

func (r requireT) InDelta(t testing.TB, want, got any, delta float64, msg ...any) {
	t.Helper()
	w, g := toFloat(t, want), toFloat(t, got)
	if math.IsNaN(g) || math.Abs(w-g) > delta {
		t.Fatalf("|%v - %v| = %v > %v%s", w, g, math.Abs(w-g), delta, msgf(msg))
	}
}

// InEpsilon checks a relative error.
func (r requireT) InEpsilon(t testing.TB, want, got any, eps float64, msg ...any) {
	t.Helper()
	w, g := toFloat(t, want), toFloat(t, got)
	if math.IsNaN(g) || math.Abs(w-g) > eps*math.Abs(w) {
		t.Fatalf("relative error |%v - %v|/%v = %.4g > %v%s", w, g, w, math.Abs(w-g)/math.Abs(w), eps, msgf(msg))
	}
}

func (r requireT) Less(t testing.TB, a, b any, msg ...any) {
	t.Helper()
	if !(toFloat(t, a) < toFloat(t, b)) {
		t.Fatalf("want %v < %v%s", a, b, msgf(msg))
	}
}

func (r requireT) LessOrEqual(t testing.TB, a, b any, msg ...any) {
	t.Helper()
	if !(toFloat(t, a) <= toFloat(t, b)) {
		t.Fatalf("want %v <= %v%s", a, b, msgf(msg))
	}
}

func (r requireT) Greater(t testing.TB, a, b any, msg ...any) {
	t.Helper()
	if !(toFloat(t, a) > toFloat(t, b)) {
		t.Fatalf("want %v > %v%s", a, b, msgf(msg))
	}
}

func (r requireT) GreaterOrEqual(t testing.TB, a, b any, msg ...any) {
	t.Helper()
	if !(toFloat(t, a) >= toFloat(t, b)) {
		t.Fatalf("want %v >= %v%s", a, b, msgf(msg))
	}
}

func (requireT) NoError(t testing.TB, err error, msg ...any) {
	t.Helper()
	if err != nil {
		t.Fatalf("unexpected error%s: %v", msgf(msg), err)
	}
}

func (requireT) ErrorIs(t testing.TB, err, target error, msg ...any) {
	t.Helper()
	if !errors.Is(err, target) {
		t.Fatalf("error %v is not %v%s", err, target, msgf(msg))
	}
}
