package api

import (
	"errors"
	"io"
	"net/http"

	"github.com/labstack/echo/v4"

	"github.com/openwaba/openwaba/api/body"
	"github.com/openwaba/openwaba/api/errcode"
)

// readBody reads the whole request body, within MaxBody.
func readBody(c echo.Context) ([]byte, error) {
	b, err := io.ReadAll(c.Request().Body)
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		return nil, tooLarge(mbe.Limit)
	}
	if err != nil {
		return nil, apiErr(http.StatusBadRequest, errcode.InvalidRequest, "could not read the request body")
	}
	return b, nil
}

// object is one JSON object of a request (package body: strict decoding
// with the on-prem error of each failure, rendered by toError).
type object = body.Object

// readObject reads the body as a JSON object whose keys must all be in
// allowed (else 1010). An empty body is an empty object. Malformed JSON and
// non-objects are 1009.
func readObject(c echo.Context, allowed ...string) (object, error) {
	b, err := readBody(c)
	if err != nil {
		return object{}, err
	}
	return body.Parse("", b, allowed...)
}

// parseObject is body.Parse.
func parseObject(path string, b []byte, allowed ...string) (object, error) {
	return body.Parse(path, b, allowed...)
}

// field is body.Field.
func field[T any](o object, name string) (T, bool, error) { return body.Field[T](o, name) }

// requiredString is body.RequiredString.
func requiredString(o object, name string) (string, error) { return body.RequiredString(o, name) }

// nested is body.Nested.
func nested(o object, name string, allowed ...string) (object, bool, error) {
	return body.Nested(o, name, allowed...)
}
