package api

import _ "embed"

// OpenAPI is the API's OpenAPI 3.1 description (openapi.yaml), which the
// webapp serves at GET /v1/openapi.json.
//
//go:embed openapi.yaml
var OpenAPI []byte
