package state

import (
	"encoding"
	"encoding/gob"
	"fmt"
	"reflect"
	"strings"
)

// UncodableError is what [CheckCodable] returns for a type that [Gob], the
// default codec of [CodecFor] for types that are not strings, numbers or
// bools, cannot carry whole.
type UncodableError struct {
	Type reflect.Type // the type checked
	// Path is where in Type the trouble is, as Go selects it: "seen",
	// "Inner.seen", "Items[].seen", "Index[key]", "Index[value].seen"; empty
	// for Type itself. Pointers are followed without a mark, as gob does.
	Path string
	// Unexported is true when the trouble is an unexported field, which
	// exporting fixes; otherwise only another codec does.
	Unexported bool
	Reason     string // what gob does with it, in a few words
}

func (e *UncodableError) Error() string {
	if e.Path == "" {
		return fmt.Sprintf("state: gob cannot carry %v: %s", e.Type, e.Reason)
	}
	return fmt.Sprintf("state: gob cannot carry %v whole: %s %s", e.Type, e.Path, e.Reason)
}

var (
	gobEncoderType    = reflect.TypeFor[gob.GobEncoder]()
	gobDecoderType    = reflect.TypeFor[gob.GobDecoder]()
	binMarshalerType  = reflect.TypeFor[encoding.BinaryMarshaler]()
	binUnmarshalType  = reflect.TypeFor[encoding.BinaryUnmarshaler]()
	textMarshalerType = reflect.TypeFor[encoding.TextMarshaler]()
	textUnmarshalType = reflect.TypeFor[encoding.TextUnmarshaler]()
)

// CheckCodable reports whether [Gob] carries every value of t whole: its
// decoding equals what was encoded. It returns nil when it does and an
// [*UncodableError] naming the first part of t that gob would refuse or
// silently drop: a struct field that is unexported (gob skips it, so a
// state struct {Count int; seen bool} comes back with seen false, and a
// struct with only unexported fields fails every encoding), a field or
// element of func or chan type (skipped or refused), an interface (gob
// needs its concrete types registered, which library code never does),
// uintptr and unsafe.Pointer. Structs, pointers, slices, arrays and maps are checked through,
// fields in order, recursive types once. A type that implements
// gob.GobEncoder and gob.GobDecoder, encoding.BinaryMarshaler and
// encoding.BinaryUnmarshaler, or encoding.TextMarshaler and
// encoding.TextUnmarshaler (on the value or its pointer, as gob looks for
// them) passes as it is: gob calls those methods.
func CheckCodable(t reflect.Type) error {
	c := codableCheck{root: t, seen: make(map[reflect.Type]bool)}
	return c.check(t, nil)
}

type codableCheck struct {
	root reflect.Type
	seen map[reflect.Type]bool
}

func (c *codableCheck) fail(path []string, unexported bool, reason string) error {
	return &UncodableError{Type: c.root, Path: strings.Join(path, ""), Unexported: unexported, Reason: reason}
}

// marshals reports whether gob encodes t with its own methods.
func marshals(t reflect.Type) bool {
	pt := t
	if t.Kind() != reflect.Pointer {
		pt = reflect.PointerTo(t)
	}
	pair := func(enc, dec reflect.Type) bool {
		return (t.Implements(enc) || pt.Implements(enc)) && pt.Implements(dec)
	}
	return pair(gobEncoderType, gobDecoderType) || pair(binMarshalerType, binUnmarshalType) || pair(textMarshalerType, textUnmarshalType)
}

func (c *codableCheck) check(t reflect.Type, path []string) error {
	for t.Kind() == reflect.Pointer {
		if marshals(t) {
			return nil
		}
		t = t.Elem()
	}
	if marshals(t) {
		return nil
	}
	switch t.Kind() {
	case reflect.Func:
		return c.fail(path, false, "is a func, which gob does not encode")
	case reflect.Chan:
		return c.fail(path, false, "is a chan, which gob does not encode")
	case reflect.UnsafePointer, reflect.Uintptr:
		return c.fail(path, false, fmt.Sprintf("is a %v, which gob does not encode", t.Kind()))
	case reflect.Interface:
		return c.fail(path, false, fmt.Sprintf("is an interface (%v), which gob decodes only for concrete types registered with gob.Register", t))
	case reflect.Slice, reflect.Array:
		return c.check(t.Elem(), append(path, "[]"))
	case reflect.Map:
		if err := c.check(t.Key(), append(path, "[key]")); err != nil {
			return err
		}
		return c.check(t.Elem(), append(path, "[value]"))
	case reflect.Struct:
		if c.seen[t] {
			return nil
		}
		c.seen[t] = true
		for i := range t.NumField() {
			f := t.Field(i)
			fp := append(path[:len(path):len(path)], f.Name)
			if len(path) > 0 {
				fp = append(path[:len(path):len(path)], ".", f.Name)
			}
			if !f.IsExported() {
				return c.fail(fp, true, "is an unexported field, which gob silently drops")
			}
			ft := f.Type
			for ft.Kind() == reflect.Pointer {
				ft = ft.Elem()
			}
			if ft.Kind() == reflect.Func || ft.Kind() == reflect.Chan {
				return c.fail(fp, false, fmt.Sprintf("is a field of %v type, which gob silently drops", ft.Kind()))
			}
			if err := c.check(f.Type, fp); err != nil {
				return err
			}
		}
	}
	return nil
}
