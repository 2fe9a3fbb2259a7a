package dstream

import (
	"errors"
	"fmt"
	"reflect"
	"strings"

	"github.com/sluicehq/sluice/state"
)

// codecCheck is one type a stateful operator encodes with its default
// codec, to be checked when the context starts.
type codecCheck struct {
	what   string       // what the type is to the operator: "key", "state", "value", "element"
	t      reflect.Type // nil when the user passed a codec for it
	option string       // the option that passes a codec for it
}

// defaultCodec is the check of T when codec is nil (the default codec,
// [state.CodecFor], encodes it), and no check when the user passed one.
func defaultCodec[T any](codec state.Codec[T], what, option string) codecCheck {
	if codec != nil {
		return codecCheck{}
	}
	return codecCheck{what: what, t: reflect.TypeFor[T](), option: option}
}

// checkCodecs refuses, for operator op, a type its default codec cannot
// carry whole (see [state.CheckCodable]): a struct with an unexported field,
// which gob drops silently or refuses, an interface, a func. The error
// names the operator, the type, the field and the fix, and wraps the
// [*state.UncodableError].
func checkCodecs(op string, checks ...codecCheck) error {
	for _, c := range checks {
		if c.t == nil {
			continue
		}
		err := state.CheckCodable(c.t)
		var ue *state.UncodableError
		if !errors.As(err, &ue) {
			if err != nil {
				return err
			}
			continue
		}
		where := ue.Reason
		if ue.Path != "" {
			where = "its field " + ue.Path + " " + ue.Reason
		}
		fix := "pass a codec for it with " + c.option
		if ue.Unexported {
			fix = "export the field, or " + fix
		}
		return &uncodableError{
			msg: fmt.Sprintf("dstream: operator %q keeps %s %s of type %v, which the default codec (gob) cannot carry whole: %s; %s",
				op, article(c.what), c.what, c.t, where, fix),
			err: ue,
		}
	}
	return nil
}

// uncodableError is the sentence of checkCodecs, unwrapping to the
// [*state.UncodableError] behind it.
type uncodableError struct {
	msg string
	err error
}

func (e *uncodableError) Error() string { return e.msg }
func (e *uncodableError) Unwrap() error { return e.err }

func article(word string) string {
	if word != "" && strings.ContainsRune("aeiou", rune(word[0])) {
		return "an"
	}
	return "a"
}
