package state

import (
	"errors"
	"reflect"
	"testing"
	"time"
)

type codableCount struct {
	Count int
	seen  bool
}

type codableHidden struct{ n, m int }

type codableOK struct {
	Count int
	Names []string
	At    time.Time
	Next  *codableOK
	By    map[string][]float64
}

type codableNested struct {
	ID    string
	Inner struct{ Stats codableCount }
}

type codableFunc struct {
	N  int
	Fn func() int
}

type codableChan struct {
	N int
	C *chan int
}

type codableIface struct {
	N int
	V any
}

// codableGob keeps an unexported field but encodes itself.
type codableGob struct{ n int }

func (g codableGob) GobEncode() ([]byte, error) { return []byte{byte(g.n)}, nil }
func (g *codableGob) GobDecode(b []byte) error  { g.n = int(b[0]); return nil }

// codableBin keeps an unexported field but marshals itself.
type codableBin struct{ n int }

func (g codableBin) MarshalBinary() ([]byte, error)  { return []byte{byte(g.n)}, nil }
func (g *codableBin) UnmarshalBinary(b []byte) error { g.n = int(b[0]); return nil }

// codableHalf marshals itself but cannot unmarshal: gob would fall back to
// its fields on decoding.
type codableHalf struct{ n int }

func (g codableHalf) MarshalBinary() ([]byte, error) { return []byte{byte(g.n)}, nil }

func TestCheckCodable(t *testing.T) {
	for _, tc := range []struct {
		name       string
		t          reflect.Type
		path       string // "" with ok: passes
		ok         bool
		unexported bool
	}{
		{"int", reflect.TypeFor[int](), "", true, false},
		{"named string", reflect.TypeFor[time.Month](), "", true, false},
		{"empty struct", reflect.TypeFor[struct{}](), "", true, false},
		{"exported fields, recursive pointer, map, slice, time", reflect.TypeFor[codableOK](), "", true, false},
		{"GobEncoder with unexported field", reflect.TypeFor[codableGob](), "", true, false},
		{"pointer to GobEncoder", reflect.TypeFor[*codableGob](), "", true, false},
		{"BinaryMarshaler with unexported field", reflect.TypeFor[codableBin](), "", true, false},
		{"slice of BinaryMarshaler", reflect.TypeFor[[]codableBin](), "", true, false},
		{"one exported, one unexported", reflect.TypeFor[codableCount](), "seen", false, true},
		{"only unexported", reflect.TypeFor[codableHidden](), "n", false, true},
		{"pointer to it", reflect.TypeFor[*codableCount](), "seen", false, true},
		{"nested", reflect.TypeFor[codableNested](), "Inner.Stats.seen", false, true},
		{"slice of it", reflect.TypeFor[[]codableCount](), "[].seen", false, true},
		{"array of pointers to it", reflect.TypeFor[[2]*codableCount](), "[].seen", false, true},
		{"map value", reflect.TypeFor[map[string]codableCount](), "[value].seen", false, true},
		{"map key", reflect.TypeFor[map[codableCount]int](), "[key].seen", false, true},
		{"func field", reflect.TypeFor[codableFunc](), "Fn", false, false},
		{"pointer to chan field", reflect.TypeFor[codableChan](), "C", false, false},
		{"func", reflect.TypeFor[func()](), "", false, false},
		{"chan", reflect.TypeFor[chan int](), "", false, false},
		{"interface field", reflect.TypeFor[codableIface](), "V", false, false},
		{"interface", reflect.TypeFor[any](), "", false, false},
		{"slice of interfaces", reflect.TypeFor[[]error](), "[]", false, false},
		{"uintptr", reflect.TypeFor[uintptr](), "", false, false},
		{"half a marshaler", reflect.TypeFor[codableHalf](), "n", false, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := CheckCodable(tc.t)
			if tc.ok {
				if err != nil {
					t.Fatalf("CheckCodable(%v) = %v, want nil", tc.t, err)
				}
				return
			}
			var ue *UncodableError
			if !errors.As(err, &ue) {
				t.Fatalf("CheckCodable(%v) = %v, want an *UncodableError", tc.t, err)
			}
			if ue.Type != tc.t || ue.Path != tc.path || ue.Unexported != tc.unexported {
				t.Fatalf("CheckCodable(%v) = {Type %v, Path %q, Unexported %v}, want {%v, %q, %v}; %v",
					tc.t, ue.Type, ue.Path, ue.Unexported, tc.t, tc.path, tc.unexported, err)
			}
		})
	}
}

// TestCheckCodableAgreesWithGob: what CheckCodable passes, Gob carries
// whole; the state it refuses for an unexported field, Gob loses.
func TestCheckCodableAgreesWithGob(t *testing.T) {
	ok := codableOK{Count: 3, Names: []string{"a"}, At: time.Unix(5, 0).UTC(), Next: &codableOK{Count: 4}, By: map[string][]float64{"x": {1.5}}}
	b, err := Gob[codableOK]().Encode(ok)
	if err != nil {
		t.Fatal(err)
	}
	got, err := Gob[codableOK]().Decode(b)
	if err != nil || !reflect.DeepEqual(got, ok) {
		t.Fatalf("gob round trip of %+v = %+v, %v", ok, got, err)
	}
	lost := codableCount{Count: 1, seen: true}
	b, err = Gob[codableCount]().Encode(lost)
	if err != nil {
		t.Fatal(err)
	}
	back, err := Gob[codableCount]().Decode(b)
	if err != nil || back == lost {
		t.Fatalf("gob round trip of %+v = %+v, %v: expected the unexported field lost, which CheckCodable refuses", lost, back, err)
	}
	if _, err := Gob[codableHidden]().Encode(codableHidden{1, 2}); err == nil {
		t.Fatal("gob encoded a struct with only unexported fields, which CheckCodable refuses")
	}
}
