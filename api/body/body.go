// Package body decodes the JSON objects of API requests strictly, with the
// on-prem error of each failure: malformed JSON or a value of the wrong type
// is 1009, a required field missing 1008, an unexpected field 1010, and the
// details name the field by its path ("interactive.action.buttons[0].reply.id").
package body

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"slices"

	"github.com/openwaba/openwaba/api/errcode"
)

// Object is one JSON object of a request, with its path for error details
// ("" for the body, "text." for a nested object).
type Object struct {
	Path string
	m    map[string]json.RawMessage
}

// Empty is an object without fields.
func Empty(path string) Object { return Object{Path: path, m: map[string]json.RawMessage{}} }

// Parse reads b as a JSON object whose keys must all be in allowed (else
// 1010). Malformed JSON and non-objects are 1009; an empty b is an empty
// object only at the top (path "").
func Parse(path string, b []byte, allowed ...string) (Object, error) {
	if path == "" && len(bytes.TrimSpace(b)) == 0 {
		return Empty(""), nil
	}
	o := Object{Path: path}
	if err := json.Unmarshal(b, &o.m); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) {
			if path == "" {
				return Object{}, errcode.New(errcode.Invalid, "the request body must be a JSON object")
			}
			return Object{}, errcode.New(errcode.Invalid, "%s must be an object", o.name())
		}
		return Object{}, errcode.New(errcode.Invalid, "the request body is not valid JSON")
	}
	if o.m == nil { // the JSON null
		if path == "" {
			return Object{}, errcode.New(errcode.Invalid, "the request body must be a JSON object")
		}
		o.m = map[string]json.RawMessage{}
	}
	var unknown []string
	for k := range o.m {
		if !slices.Contains(allowed, k) {
			unknown = append(unknown, k)
		}
	}
	if len(unknown) > 0 {
		slices.Sort(unknown)
		return Object{}, errcode.New(errcode.NotRequired, "parameter %s%s is not expected", path, unknown[0])
	}
	return o, nil
}

// name is the object's own name for messages ("the request body", "text").
func (o Object) name() string {
	if o.Path == "" {
		return "the request body"
	}
	return o.Path[:len(o.Path)-1]
}

// Has reports whether the key is present and not null.
func (o Object) Has(name string) bool {
	raw, ok := o.m[name]
	return ok && string(raw) != "null"
}

// Raw is the undecoded value of a key (nil when absent).
func (o Object) Raw(name string) json.RawMessage { return o.m[name] }

// Keys are the object's keys, sorted.
func (o Object) Keys() []string {
	out := make([]string, 0, len(o.m))
	for k := range o.m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// Field decodes o[name] into a T. A missing key or null gives the zero value
// and present == false; a value of another type is 1009.
func Field[T any](o Object, name string) (v T, present bool, err error) {
	if !o.Has(name) {
		return v, false, nil
	}
	if err := json.Unmarshal(o.m[name], &v); err != nil {
		return v, true, errcode.New(errcode.Invalid, "%s%s must be %s", o.Path, name, kindOf(v))
	}
	return v, true, nil
}

// String is Field[string].
func String(o Object, name string) (string, error) {
	v, _, err := Field[string](o, name)
	return v, err
}

// RequiredString is Field[string] with a missing or empty value as 1008.
func RequiredString(o Object, name string) (string, error) {
	v, _, err := Field[string](o, name)
	if err != nil {
		return "", err
	}
	if v == "" {
		return "", errcode.New(errcode.Missing, "%s%s is required", o.Path, name)
	}
	return v, nil
}

// RequiredNumber is Field[float64] with a missing value as 1008 (0 is a
// value).
func RequiredNumber(o Object, name string) (float64, error) {
	v, present, err := Field[float64](o, name)
	if err != nil {
		return 0, err
	}
	if !present {
		return 0, errcode.New(errcode.Missing, "%s%s is required", o.Path, name)
	}
	return v, nil
}

// Nested parses o[name] as an object whose keys must be in allowed.
func Nested(o Object, name string, allowed ...string) (Object, bool, error) {
	if !o.Has(name) {
		return Object{}, false, nil
	}
	n, err := Parse(o.Path+name+".", o.m[name], allowed...)
	return n, true, err
}

// Array decodes o[name] as a JSON array of raw elements (missing or null:
// nil, false); anything but an array is 1009.
func Array(o Object, name string) ([]json.RawMessage, bool, error) {
	if !o.Has(name) {
		return nil, false, nil
	}
	var items []json.RawMessage
	if err := json.Unmarshal(o.m[name], &items); err != nil {
		return nil, true, errcode.New(errcode.Invalid, "%s%s must be an array", o.Path, name)
	}
	return items, true, nil
}

// Elem is the path of element i of the array o[name], for Parse.
func Elem(o Object, name string, i int) string { return fmt.Sprintf("%s%s[%d].", o.Path, name, i) }

func kindOf(v any) string {
	switch v.(type) {
	case string:
		return "a string"
	case bool:
		return "a boolean"
	case float64, int, int64:
		return "a number"
	case []string:
		return "an array of strings"
	case map[string]string:
		return "an object of string values"
	case []json.RawMessage:
		return "an array"
	}
	return "of another type"
}
