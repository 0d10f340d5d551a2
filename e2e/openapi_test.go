package e2e

import (
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"
)

// apiSpec is the served OpenAPI document, enough to validate answers.
type apiSpec struct {
	doc   map[string]any
	paths []specPath
}

type specPath struct {
	re  *regexp.Regexp
	ops map[string]any
}

func loadSpec(t *testing.T, c *http.Client, base string) *apiSpec {
	t.Helper()
	resp, err := c.Get(base + "/v1/openapi.json")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var doc map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&doc); err != nil {
		t.Fatal(err)
	}
	s := &apiSpec{doc: doc}
	var tmpls []string
	paths, _ := doc["paths"].(map[string]any)
	for p := range paths {
		tmpls = append(tmpls, p)
	}
	// Literal paths before templated ones: /v1/messages before /{version}/{id}.
	sort.Slice(tmpls, func(i, j int) bool {
		a, b := strings.Count(tmpls[i], "{"), strings.Count(tmpls[j], "{")
		if a != b {
			return a < b
		}
		return tmpls[i] < tmpls[j]
	})
	param := regexp.MustCompile(`\{\w+\}`)
	for _, p := range tmpls {
		// QuoteMeta escapes the braces; unescape them to match the parameters.
		quoted := strings.NewReplacer(`\{`, "{", `\}`, "}").Replace(regexp.QuoteMeta(p))
		re := regexp.MustCompile("^" + param.ReplaceAllString(quoted, `[^/]+`) + "$")
		s.paths = append(s.paths, specPath{re: re, ops: paths[p].(map[string]any)})
	}
	return s
}

// operation is the spec's operation of method path.
func (s *apiSpec) operation(method, path string) (map[string]any, bool) {
	path, _, _ = strings.Cut(path, "?")
	path = strings.TrimSuffix(path, "/")
	for _, p := range s.paths {
		if p.re.MatchString(path) {
			if op, ok := p.ops[strings.ToLower(method)].(map[string]any); ok {
				return op, true
			}
		}
	}
	return nil, false
}

// requestSchema is the JSON schema of method path's request body (nil:
// the operation takes no JSON body).
func (s *apiSpec) requestSchema(method, path string) map[string]any {
	op, _ := s.operation(method, path)
	rb, _ := op["requestBody"].(map[string]any)
	content, _ := rb["content"].(map[string]any)
	js, _ := content["application/json"].(map[string]any)
	sch, _ := js["schema"].(map[string]any)
	return sch
}

// schemaFor is the JSON schema of the answer to method path with status,
// or nil when the operation answers no JSON for it.
func (s *apiSpec) schemaFor(method, path string, status int) (map[string]any, error) {
	path, _, _ = strings.Cut(path, "?")
	path = strings.TrimSuffix(path, "/")
	for _, p := range s.paths {
		if !p.re.MatchString(path) {
			continue
		}
		op, ok := p.ops[strings.ToLower(method)].(map[string]any)
		if !ok {
			continue
		}
		resps, _ := op["responses"].(map[string]any)
		r, ok := resps[strconv.Itoa(status)].(map[string]any)
		if !ok {
			if r, ok = resps["default"].(map[string]any); !ok {
				return nil, fmt.Errorf("no answer %d documented", status)
			}
		}
		content, _ := r["content"].(map[string]any)
		js, ok := content["application/json"].(map[string]any)
		if !ok {
			return nil, nil
		}
		sch, _ := js["schema"].(map[string]any)
		return sch, nil
	}
	return nil, fmt.Errorf("no operation in the spec")
}

// validate checks v against schema (type, required, properties, items,
// $ref: what api/openapi.yaml uses).
func (s *apiSpec) validate(v any, schema map[string]any, at string) error {
	if ref, ok := schema["$ref"].(string); ok {
		name := strings.TrimPrefix(ref, "#/components/schemas/")
		comps, _ := s.doc["components"].(map[string]any)
		schemas, _ := comps["schemas"].(map[string]any)
		target, ok := schemas[name].(map[string]any)
		if !ok {
			return fmt.Errorf("%s: unknown schema %s", at, ref)
		}
		return s.validate(v, target, at)
	}
	switch schema["type"] {
	case "object":
		m, ok := v.(map[string]any)
		if !ok {
			return fmt.Errorf("%s: %T, want an object", at, v)
		}
		req, _ := schema["required"].([]any)
		for _, k := range req {
			if _, ok := m[k.(string)]; !ok {
				return fmt.Errorf("%s: %s is required", at, k)
			}
		}
		props, _ := schema["properties"].(map[string]any)
		for k, ps := range props {
			if e, ok := m[k]; ok {
				if err := s.validate(e, ps.(map[string]any), at+"."+k); err != nil {
					return err
				}
			}
		}
	case "array":
		a, ok := v.([]any)
		if !ok {
			return fmt.Errorf("%s: %T, want an array", at, v)
		}
		if items, ok := schema["items"].(map[string]any); ok {
			for i, e := range a {
				if err := s.validate(e, items, fmt.Sprintf("%s[%d]", at, i)); err != nil {
					return err
				}
			}
		}
	case "string":
		if _, ok := v.(string); !ok {
			return fmt.Errorf("%s: %T, want a string", at, v)
		}
	case "integer":
		f, ok := v.(float64)
		if !ok || f != float64(int64(f)) {
			return fmt.Errorf("%s: %v, want an integer", at, v)
		}
	case "number":
		if _, ok := v.(float64); !ok {
			return fmt.Errorf("%s: %T, want a number", at, v)
		}
	case "boolean":
		if _, ok := v.(bool); !ok {
			return fmt.Errorf("%s: %T, want a boolean", at, v)
		}
	}
	return nil
}
