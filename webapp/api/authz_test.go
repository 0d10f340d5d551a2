package api_test

import (
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/labstack/echo/v4"
)

// The callers of the authorization matrix.
var callers = []string{"none", "bad token", "USER", "ADMIN", "own key", "other number's key", "revoked key", "monitoring key"}

// authzMatrix is what each caller gets on each route: U = 401, F = 403,
// P = passes authentication and authorization (any other status: the
// handler ran, and here coreapp is unreachable). The columns follow
// callers. A route of the router without a row fails the test, so a new
// route must say who may call it.
//
// Routes with parameters are called with a user "bobby" that does not exist
// (a USER acting on another user gets 403 from the handler), an unknown key
// prefix, message and media ids, and a provider name. An API key of another
// number passes here like its own: what a key reaches is scoped to its
// number by coreapp (see e2e TestTenantIsolation).
var authzMatrix = map[string]string{
	"POST /v1/users/login":       "UUUUUUUU", // Basic only: every other credential is ignored
	"GET /v1/openapi.json":       "PPPPPPPP", // public
	"POST /v1/users/logout":      "UUPPFFUU",
	"POST /v1/users":             "UUFPFFUU",
	"GET /v1/users/:username":    "UUFPFFUU",
	"PUT /v1/users/:username":    "UUFPFFUU",
	"DELETE /v1/users/:username": "UUFPFFUU",

	"POST /v1/account":                    "UUFPFFUU",
	"POST /v1/account/verify":             "UUFPFFUU",
	"POST /v1/account/shards":             "UUFPFFUU",
	"GET /v1/account/shards":              "UUFPFFUU",
	"POST /v1/account/api_keys":           "UUFPFFUU",
	"GET /v1/account/api_keys":            "UUFPFFUU",
	"DELETE /v1/account/api_keys/:prefix": "UUFPFFUU",

	"POST /v1/messages":                "UUPPPPUU",
	"PUT /v1/messages/:id":             "UUPPPPUU",
	"POST /v1/contacts":                "UUPPPPUU",
	"POST /v1/contacts/:wa_id/block":   "UUPPPPUU",
	"POST /v1/contacts/:wa_id/unblock": "UUPPPPUU",

	"POST /v1/settings/account/two-step":   "UUFPPPUU",
	"DELETE /v1/settings/account/two-step": "UUFPPPUU",

	"GET /v1/settings/application":       "UUFPPPUU",
	"PATCH /v1/settings/application":     "UUFPPPUU",
	"DELETE /v1/settings/application":    "UUFPPPUU",
	"GET /v1/settings/business/profile":  "UUFPPPUU",
	"POST /v1/settings/business/profile": "UUFPPPUU",
	"GET /v1/settings/profile/about":     "UUFPPPUU",
	"PATCH /v1/settings/profile/about":   "UUFPPPUU",
	"GET /v1/settings/profile/photo":     "UUFPPPUU",
	"POST /v1/settings/profile/photo":    "UUFPPPUU",
	"DELETE /v1/settings/profile/photo":  "UUFPPPUU",

	"GET /v1/configs/webhook":      "UUFPPPUU",
	"POST /v1/configs/webhook":     "UUFPPPUU",
	"GET /v1/configs/phone_number": "UUPPPPUU",

	"GET /v1/webhooks/endpoints":               "UUFPPPUU",
	"POST /v1/webhooks/endpoints":              "UUFPPPUU",
	"GET /v1/webhooks/endpoints/:id":           "UUFPPPUU",
	"PATCH /v1/webhooks/endpoints/:id":         "UUFPPPUU",
	"DELETE /v1/webhooks/endpoints/:id":        "UUFPPPUU",
	"POST /v1/webhooks/endpoints/:id/secret":   "UUFPPPUU",
	"DELETE /v1/webhooks/endpoints/:id/secret": "UUFPPPUU",
	"GET /v1/webhooks/deliveries":              "UUFPPPUU",
	"POST /v1/webhooks/deliveries/replay":      "UUFPPPUU",
	"POST /v1/webhooks/deliveries/:id/replay":  "UUFPPPUU",

	"POST /v1/configs/templates":         "UUFPPPUU",
	"GET /v1/configs/templates":          "UUFPPPUU",
	"DELETE /v1/configs/templates/:name": "UUFPPPUU",

	"POST /v1/media":                                        "UUPPPPUU",
	"GET /v1/media/:id":                                     "UUPPPPUU",
	"DELETE /v1/media/:id":                                  "UUPPPPUU",
	"PUT /v1/services/media/gc":                             "UUFPPPUU",
	"PUT /v1/services/message/gc":                           "UUFPPPUU",
	"GET /v1/settings/application/media/providers":          "UUFPPPUU",
	"POST /v1/settings/application/media/providers":         "UUFPPPUU",
	"DELETE /v1/settings/application/media/providers/:name": "UUFPPPUU",

	"GET /v1/health":                      "UUPPPPUP",
	"GET /v1/support":                     "UUFPFFUU",
	"GET /metrics":                        "UUPPPPUP",
	"GET /v1/stats/app":                   "UUPPPPUP",
	"GET /v1/stats/app/internal":          "UUPPPPUP",
	"GET /v1/stats/db":                    "UUPPPPUP",
	"GET /v1/stats/db/internal":           "UUPPPPUP",
	"POST /v1/settings/backup":            "UUFPFFUU",
	"POST /v1/settings/restore":           "UUFPFFUU",
	"POST /v1/certificates/external":      "UUFPFFUU",
	"GET /v1/certificates/external/ca":    "UUFPFFUU",
	"GET /v1/certificates/webhooks/ca":    "UUFPFFUU",
	"POST /v1/certificates/webhooks/ca":   "UUFPFFUU",
	"DELETE /v1/certificates/webhooks/ca": "UUFPFFUU",

	// The Cloud API: a bearer API key is the own key's column too.
	"POST /:version/:id/messages":                   "UUPPPPUU",
	"POST /:version/:id/media":                      "UUPPPPUU",
	"GET /:version/:id":                             "UUPPPPUU",
	"POST /:version/:id":                            "UUFPPPUU",
	"DELETE /:version/:id":                          "UUPPPPUU",
	"GET /:version/:id/phone_numbers":               "UUPPPPUU",
	"GET /:version/:id/message_templates":           "UUFPPPUU",
	"POST /:version/:id/message_templates":          "UUFPPPUU",
	"DELETE /:version/:id/message_templates":        "UUFPPPUU",
	"GET /:version/:id/message_templates/:template": "UUFPPPUU",
	"GET /:version/:id/whatsapp_business_profile":   "UUPPPPUU",
	"POST /:version/:id/whatsapp_business_profile":  "UUFPPPUU",
	"POST /messages":                                "UUPPPPUU",
	"POST /media":                                   "UUPPPPUU",
	"GET /:id":                                      "UUPPPPUU",
	"DELETE /:id":                                   "UUPPPPUU",
	"GET /cloud/media/:id":                          "FFFFFFFF", // no credentials: a signature, missing here
	"GET /cloud/photo/:pnid":                        "FFFFFFFF", // the same
}

var pathParams = strings.NewReplacer(":username", "bobby", ":prefix", "ABCDEFGH", ":id", "wamid.HBgLMTIzNDU2Nzg5MBUCABEYEjVGN0E0", ":name", "prov", ":version", "v23.0", ":wa_id", "16315551000")

// rootParams fills the Cloud flavour's root routes, which answer media ids
// only.
var rootParams = strings.NewReplacer("/:id", "/9d3c0a2e-5f4b-4c1e-9a7d-1b2c3d4e5f60")

func TestAuthorizationMatrix(t *testing.T) {
	f := newFixture(t)
	ctx := t.Context()
	other, err := f.store.CreateAPIKey(ctx, "4915199999999", "admin")
	if err != nil {
		t.Fatal(err)
	}
	revoked, err := f.store.CreateAPIKey(ctx, keyNumber, "admin")
	if err != nil {
		t.Fatal(err)
	}
	if err := f.store.RevokeAPIKey(ctx, revoked.Prefix); err != nil {
		t.Fatal(err)
	}
	// Every request gets fresh tokens: logout revokes the one it presents.
	credential := func(caller string) reqOpt {
		switch caller {
		case "bad token":
			return bearer(strings.Repeat("x", 43))
		case "USER", "ADMIN":
			user, pw := "alice", alicePassword
			if caller == "ADMIN" {
				user, pw = "admin", adminPassword
			}
			tok, err := f.store.Login(ctx, "", user, pw, "")
			if err != nil {
				t.Fatal(err)
			}
			return bearer(tok.Value)
		case "own key":
			return d360(f.key.Key)
		case "other number's key":
			return d360(other.Key)
		case "revoked key":
			return d360(revoked.Key)
		case "monitoring key":
			return header("Authorization", "Apikey "+monitoringKey)
		}
		return func(*http.Request) {}
	}
	routes := f.srv.Handler().(*echo.Echo).Routes()
	if len(routes) == 0 {
		t.Fatal("the router has no routes")
	}
	seen := map[string]bool{}
	for _, r := range routes {
		name := r.Method + " " + r.Path
		seen[name] = true
		want, ok := authzMatrix[name]
		if !ok {
			t.Errorf("route %s has no row in the authorization matrix", name)
			continue
		}
		for i, caller := range callers {
			t.Run(fmt.Sprintf("%s/%s", name, caller), func(t *testing.T) {
				res := f.raw(t, r.Method, pathParams.Replace(rootParams.Replace(r.Path)), credential(caller))
				got := 'P'
				switch res {
				case http.StatusUnauthorized:
					got = 'U'
				case http.StatusForbidden:
					got = 'F'
				}
				if rune(want[i]) != got {
					t.Errorf("%s by %s: status %d (%c), want %c", name, caller, res, got, want[i])
				}
			})
		}
	}
	for name := range authzMatrix {
		if !seen[name] {
			t.Errorf("the matrix has a row for %s, which is not routed", name)
		}
	}
}

// raw makes a request with an empty JSON body and returns the status.
func (e *env) raw(t *testing.T, method, path string, opts ...reqOpt) int {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, e.url+path, strings.NewReader("{}"))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	for _, o := range opts {
		o(req)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	return res.StatusCode
}
