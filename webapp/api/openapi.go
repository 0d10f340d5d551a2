package api

import (
	"encoding/json"
	"fmt"
	"net/http"
	"sync"

	"github.com/labstack/echo/v4"
	"go.yaml.in/yaml/v3"

	openwaba "github.com/openwaba/openwaba/api"
)

// openAPIJSON is api/openapi.yaml as JSON, converted once.
var openAPIJSON = sync.OnceValues(func() ([]byte, error) {
	var doc any
	if err := yaml.Unmarshal(openwaba.OpenAPI, &doc); err != nil {
		return nil, fmt.Errorf("api/openapi.yaml: %w", err)
	}
	return json.Marshal(jsonable(doc))
})

// jsonable turns YAML's map[any]any into JSON's map[string]any.
func jsonable(v any) any {
	switch x := v.(type) {
	case map[string]any:
		for k, e := range x {
			x[k] = jsonable(e)
		}
		return x
	case map[any]any:
		m := make(map[string]any, len(x))
		for k, e := range x {
			m[fmt.Sprint(k)] = jsonable(e)
		}
		return m
	case []any:
		for i, e := range x {
			x[i] = jsonable(e)
		}
		return x
	}
	return v
}

// openAPI: GET /v1/openapi.json (no credentials: the description of the
// API is not a secret).
func (s *Server) openAPI(c echo.Context) error {
	b, err := openAPIJSON()
	if err != nil {
		return internal(err)
	}
	return c.Blob(http.StatusOK, "application/json", b)
}
