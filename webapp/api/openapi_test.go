package api_test

import (
	"encoding/json"
	"io"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/labstack/echo/v4"
)

// TestOpenAPIMatchesRouter: every route is in GET /v1/openapi.json, and
// every operation there is routed.
func TestOpenAPIMatchesRouter(t *testing.T) {
	f := newFixture(t)
	res, err := http.Get(f.url + "/v1/openapi.json") // no credentials
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(res.Body)
	var spec struct {
		OpenAPI string                                `json:"openapi"`
		Paths   map[string]map[string]json.RawMessage `json:"paths"`
	}
	if res.StatusCode != 200 {
		t.Fatalf("GET /v1/openapi.json = %d %s", res.StatusCode, body)
	}
	if err := json.Unmarshal(body, &spec); err != nil || !strings.HasPrefix(spec.OpenAPI, "3.") {
		t.Fatalf("not an OpenAPI 3 document: %v", err)
	}
	inSpec := map[string]bool{}
	for path, ops := range spec.Paths {
		for method := range ops {
			if method != "parameters" {
				inSpec[strings.ToUpper(method)+" "+path] = true
			}
		}
	}
	param := regexp.MustCompile(`:(\w+)`)
	routed := map[string]bool{}
	for _, rt := range f.srv.Handler().(*echo.Echo).Routes() {
		routed[rt.Method+" "+param.ReplaceAllString(rt.Path, "{$1}")] = true
	}
	for op := range routed {
		if !inSpec[op] {
			t.Errorf("%s is routed but not in api/openapi.yaml", op)
		}
	}
	for _, op := range slices.Sorted(func(yield func(string) bool) {
		for op := range inSpec {
			if !yield(op) {
				return
			}
		}
	}) {
		if !routed[op] {
			t.Errorf("%s is in api/openapi.yaml but not routed", op)
		}
	}
}
