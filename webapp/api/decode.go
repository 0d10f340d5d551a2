package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"slices"

	"github.com/labstack/echo/v4"
)

// readBody reads the whole request body, within MaxBody.
func readBody(c echo.Context) ([]byte, error) {
	b, err := io.ReadAll(c.Request().Body)
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		return nil, tooLarge(mbe.Limit)
	}
	if err != nil {
		return nil, apiErr(http.StatusBadRequest, codeInvalidRequest, "could not read the request body")
	}
	return b, nil
}

// object is one JSON object of a request, with its path for error details
// ("" for the body, "text." for a nested object).
type object struct {
	path string
	m    map[string]json.RawMessage
}

// readObject reads the body as a JSON object whose keys must all be in
// allowed (else 1010). An empty body is an empty object. Malformed JSON and
// non-objects are 1009.
func readObject(c echo.Context, allowed ...string) (object, error) {
	b, err := readBody(c)
	if err != nil {
		return object{}, err
	}
	if len(bytes.TrimSpace(b)) == 0 {
		return object{m: map[string]json.RawMessage{}}, nil
	}
	return parseObject("", b, allowed...)
}

func parseObject(path string, b []byte, allowed ...string) (object, error) {
	o := object{path: path}
	if err := json.Unmarshal(b, &o.m); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) {
			if path == "" {
				return object{}, invalid("the request body must be a JSON object")
			}
			return object{}, invalid("%s must be an object", path[:len(path)-1])
		}
		return object{}, invalid("the request body is not valid JSON")
	}
	if o.m == nil { // the JSON null
		if path == "" {
			return object{}, invalid("the request body must be a JSON object")
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
		return object{}, notRequired("parameter %s%s is not expected", path, unknown[0])
	}
	return o, nil
}

// has reports whether the key is present and not null.
func (o object) has(name string) bool {
	raw, ok := o.m[name]
	return ok && string(raw) != "null"
}

// field decodes o[name] into a T. A missing key or null gives the zero value
// and present == false; a value of another type is 1009.
func field[T any](o object, name string) (v T, present bool, err error) {
	if !o.has(name) {
		return v, false, nil
	}
	if err := json.Unmarshal(o.m[name], &v); err != nil {
		return v, true, invalid("%s%s must be %s", o.path, name, kindOf(v))
	}
	return v, true, nil
}

// requiredString is field[string] with a missing or empty value as 1008.
func requiredString(o object, name string) (string, error) {
	v, _, err := field[string](o, name)
	if err != nil {
		return "", err
	}
	if v == "" {
		return "", missing("%s%s is required", o.path, name)
	}
	return v, nil
}

// nested parses o[name] as an object whose keys must be in allowed.
func nested(o object, name string, allowed ...string) (object, bool, error) {
	if !o.has(name) {
		return object{}, false, nil
	}
	n, err := parseObject(o.path+name+".", o.m[name], allowed...)
	return n, true, err
}

func kindOf(v any) string {
	switch v.(type) {
	case string:
		return "a string"
	case bool:
		return "a boolean"
	case float64:
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
