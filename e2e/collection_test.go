package e2e

import (
	"bytes"
	"encoding/json"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/openwaba/openwaba/e2e/stack"
	"github.com/openwaba/openwaba/webapp/webtls/certtest"
)

// collection is testdata/onprem-collection.json.
type collection struct {
	Requests []struct {
		Name, Method, Path, Auth, Raw, Pending string
		ContentType                            string            `json:"content_type"`
		Body                                   json.RawMessage   `json:"body"`
		Capture                                map[string]string `json:"capture"`
	} `json:"requests"`
}

var placeholder = regexp.MustCompile(`\{\{(\w+)\}\}`)

// pick walks a dotted path (object keys, array indexes) into a JSON value.
func pick(v any, path string) (string, bool) {
	for _, k := range strings.Split(path, ".") {
		switch x := v.(type) {
		case map[string]any:
			v = x[k]
		case []any:
			i, err := strconv.Atoi(k)
			if err != nil || i < 0 || i >= len(x) {
				return "", false
			}
			v = x[i]
		default:
			return "", false
		}
	}
	s, ok := v.(string)
	return s, ok
}

// TestOnPremCollection replays the on-prem API's documented requests
// (testdata/onprem-collection.json) on a registered number and fails on
// any 404 or 5xx: an on-prem deployment's scripts find every route.
func TestOnPremCollection(t *testing.T) {
	b, err := os.ReadFile("testdata/onprem-collection.json")
	if err != nil {
		t.Fatal(err)
	}
	var coll collection
	if err := json.Unmarshal(b, &coll); err != nil {
		t.Fatal(err)
	}
	s, tok, _ := encStack(t, stack.Options{})
	phone := s.NewPhone("15551230009", "Pat")
	vars := map[string]string{"contact": phone.Number(), "inbound_id": phone.OpenWindow(bizWaID)}

	ca := certtest.NewCA(t, "Collection CA")
	leaf := ca.Issue(t, []string{"localhost", "127.0.0.1"}, time.Now().Add(-time.Hour), time.Now().Add(24*time.Hour))
	raws := map[string][]byte{
		"png":           pngOf(t, 640, 640),
		"pdf":           []byte("%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n"),
		"external-cert": bytes.Join([][]byte{leaf.KeyPEM, leaf.CertPEM, ca.PEM}, nil),
		"webhook-ca":    ca.PEM,
	}
	fill := func(s string) string {
		return placeholder.ReplaceAllStringFunc(s, func(m string) string {
			k := m[2 : len(m)-2]
			v, ok := vars[k]
			if !ok {
				t.Fatalf("%s is not known yet", m)
			}
			return v
		})
	}
	answered, validated := 0, 0
	spec := loadSpec(t, s.Client, s.URL)
	for _, rq := range coll.Requests {
		auth := bearer(tok)
		switch rq.Auth {
		case "admin-basic":
			auth = stack.Auth{Basic: [2]string{"admin", stack.AdminPassword}}
		case "monitoring":
			auth = stack.Auth{Header: map[string]string{"Authorization": "Apikey monitoring-key-0123456789"}}
		}
		var body []byte
		ct := rq.ContentType
		switch {
		case rq.Raw != "":
			body = raws[rq.Raw]
			if body == nil {
				t.Fatalf("%s: no generator for raw %q", rq.Name, rq.Raw)
			}
		case len(rq.Body) > 0:
			body, ct = []byte(fill(string(rq.Body))), "application/json"
			// The documented request is the one the OpenAPI document describes.
			if sch := spec.requestSchema(rq.Method, fill(rq.Path)); sch == nil {
				t.Errorf("%s: %s %s takes no JSON body in api/openapi.yaml", rq.Name, rq.Method, rq.Path)
			} else {
				var v any
				json.Unmarshal(body, &v)
				if err := spec.validate(v, sch, "request"); err != nil {
					t.Errorf("%s: the request does not match api/openapi.yaml: %v", rq.Name, err)
				}
			}
		}
		path := fill(rq.Path)
		code, hdr, resp := s.Raw(rq.Method, path, auth, ct, body)
		if rq.Pending != "" {
			if code != 404 {
				t.Errorf("%s (%s %s) answers %d: it is no longer pending (%s), remove the marker", rq.Name, rq.Method, rq.Path, code, rq.Pending)
			}
			continue
		}
		if code == 404 || code >= 500 {
			t.Errorf("%s: %s %s = %d %s", rq.Name, rq.Method, rq.Path, code, resp)
			continue
		}
		answered++
		// The answer is the one the OpenAPI document describes.
		if sch, err := spec.schemaFor(rq.Method, path, code); err != nil {
			t.Errorf("%s: %s %s = %d: %v (api/openapi.yaml)", rq.Name, rq.Method, rq.Path, code, err)
		} else if sch != nil && strings.HasPrefix(hdr.Get("Content-Type"), "application/json") {
			var v any
			if err := json.Unmarshal(resp, &v); err != nil {
				t.Errorf("%s: the answer is not JSON: %s", rq.Name, resp)
			} else if err := spec.validate(v, sch, "answer"); err != nil {
				t.Errorf("%s: %s %s = %d does not match api/openapi.yaml: %v\n%s", rq.Name, rq.Method, rq.Path, code, err, resp)
			}
			validated++
		}
		if code >= 400 {
			t.Logf("%s: %s %s = %d %s", rq.Name, rq.Method, rq.Path, code, resp)
		}
		if len(rq.Capture) > 0 {
			var v any
			if err := json.Unmarshal(resp, &v); err != nil {
				t.Fatalf("%s: the answer %s is not JSON", rq.Name, resp)
			}
			for k, path := range rq.Capture {
				got, ok := pick(v, path)
				if !ok {
					t.Fatalf("%s: no %s in %s", rq.Name, path, resp)
				}
				vars[k] = got
			}
		}
	}
	t.Logf("%d documented requests answered, %d answers validated against the OpenAPI document", answered, validated)
	if validated < 30 {
		t.Errorf("only %d answers validated against the OpenAPI document", validated)
	}
}
