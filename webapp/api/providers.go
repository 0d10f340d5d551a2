package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"unicode"

	"github.com/labstack/echo/v4"
	"golang.org/x/net/http/httpguts"

	"github.com/openwaba/openwaba/media"
	corev1 "github.com/openwaba/openwaba/proto/gen/core/v1"
)

// Limits on media providers.
const (
	MaxMediaProviders = 20 // in one POST
	maxProviderHosts  = 20
	maxProviderHost   = 260
)

// masked replaces every secret in responses (media providers, the
// support report).
const masked = "********"

func invalidProviderName(path string) *Error {
	return invalid("%sname must be 1 to %d characters of A-Z, a-z, 0-9, '_', '.' and '-'", path, media.MaxProviderName)
}

type providersResponse struct {
	Settings struct {
		Application struct {
			Media struct {
				Providers []providerItem `json:"providers"`
			} `json:"media"`
		} `json:"application"`
	} `json:"settings"`
	Meta meta `json:"meta"`
}

type providerItem struct {
	Name   string         `json:"name"`
	Type   string         `json:"type"`
	Config providerConfig `json:"config"`
	Hosts  []string       `json:"hosts"`
}

type providerConfig struct {
	Bearer string       `json:"bearer,omitempty"`
	Basic  *basicConfig `json:"basic,omitempty"`
}

type basicConfig struct {
	Username string `json:"username"`
	Password string `json:"password"`
}

// maskProvider is the provider as shown to clients: its secrets (the bearer
// token, the basic password) are never returned.
func maskProvider(p *corev1.MediaProvider) providerItem {
	item := providerItem{Name: p.GetName(), Type: p.GetType(), Hosts: p.GetHosts()}
	if item.Hosts == nil {
		item.Hosts = []string{}
	}
	if p.GetBearer() != "" {
		item.Config.Bearer = masked
	}
	if p.GetBasicUsername() != "" || p.GetBasicPassword() != "" {
		item.Config.Basic = &basicConfig{Username: p.GetBasicUsername(), Password: masked}
	}
	return item
}

// getMediaProviders: GET /v1/settings/application/media/providers (admin or
// API key), secrets masked.
func (s *Server) getMediaProviders(c echo.Context) error {
	resp, err := call(s, c, s.opts.CallTimeout, s.core.GetMediaProviders, &corev1.GetMediaProvidersRequest{Account: principalOf(c).account()})
	if err != nil {
		return err
	}
	var out providersResponse
	out.Meta = s.meta
	out.Settings.Application.Media.Providers = make([]providerItem, 0, len(resp.GetProviders()))
	for _, p := range resp.GetProviders() {
		out.Settings.Application.Media.Providers = append(out.Settings.Application.Media.Providers, maskProvider(p))
	}
	return c.JSON(http.StatusOK, out)
}

// setMediaProviders: POST /v1/settings/application/media/providers (admin
// or API key) with a JSON array of providers, added to or replacing those of
// the same name.
func (s *Server) setMediaProviders(c echo.Context) error {
	b, err := readBody(c)
	if err != nil {
		return err
	}
	providers, err := parseProviders(b)
	if err != nil {
		return err
	}
	req := &corev1.SetMediaProvidersRequest{Account: principalOf(c).account(), Providers: providers}
	if _, err := call(s, c, s.opts.CallTimeout, s.core.SetMediaProviders, req); err != nil {
		return err
	}
	return c.JSON(http.StatusOK, metaOnly{Meta: s.meta})
}

// deleteMediaProvider: DELETE /v1/settings/application/media/providers/{name}
// (admin or API key).
func (s *Server) deleteMediaProvider(c echo.Context) error {
	name := c.Param("name")
	if !media.ValidProviderName(name) {
		return notFound("media provider not found")
	}
	req := &corev1.DeleteMediaProviderRequest{Account: principalOf(c).account(), Name: name}
	if _, err := call(s, c, s.opts.CallTimeout, s.core.DeleteMediaProvider, req); err != nil {
		return err
	}
	return c.JSON(http.StatusOK, metaOnly{Meta: s.meta})
}

// parseProviders validates
// [{"name":"prov","type":"www","hosts":["media.example.com"],"config":{"bearer":"…"}|{"basic":{"username":"…","password":"…"}}}].
// coreapp checks the host patterns.
func parseProviders(b []byte) ([]*corev1.MediaProvider, error) {
	const want = "the request body must be a JSON array of media providers"
	if len(bytes.TrimSpace(b)) == 0 {
		return nil, missing("%s", want)
	}
	var items []json.RawMessage
	if err := json.Unmarshal(b, &items); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) {
			return nil, invalid("%s", want)
		}
		return nil, invalid("the request body is not valid JSON")
	}
	switch {
	case items == nil: // the JSON null
		return nil, invalid("%s", want)
	case len(items) == 0 || len(items) > MaxMediaProviders:
		return nil, invalid("the request has %d providers: send 1 to %d", len(items), MaxMediaProviders)
	}
	providers := make([]*corev1.MediaProvider, 0, len(items))
	seen := make(map[string]bool, len(items))
	for i, raw := range items {
		p, err := parseProvider(fmt.Sprintf("providers[%d].", i), raw)
		if err != nil {
			return nil, err
		}
		if seen[p.Name] {
			return nil, invalid("providers[%d].name: %s is given twice", i, p.Name)
		}
		seen[p.Name] = true
		providers = append(providers, p)
	}
	return providers, nil
}

func parseProvider(path string, raw json.RawMessage) (*corev1.MediaProvider, error) {
	o, err := parseObject(path, raw, "name", "type", "config", "hosts")
	if err != nil {
		return nil, err
	}
	p := &corev1.MediaProvider{}
	if p.Name, err = requiredString(o, "name"); err != nil {
		return nil, err
	}
	if !media.ValidProviderName(p.Name) {
		return nil, invalidProviderName(path)
	}
	if p.Type, err = requiredString(o, "type"); err != nil {
		return nil, err
	}
	if p.Type != "www" {
		return nil, invalid(`%stype must be "www"`, path)
	}
	cfg, present, err := nested(o, "config", "bearer", "basic")
	if err != nil {
		return nil, err
	}
	if !present {
		return nil, missing("%sconfig is required", path)
	}
	switch hasBearer, hasBasic := cfg.Has("bearer"), cfg.Has("basic"); {
	case hasBearer && hasBasic:
		return nil, invalid("%sconfig must have either bearer or basic, not both", path)
	case hasBearer:
		if p.Bearer, err = requiredString(cfg, "bearer"); err != nil {
			return nil, err
		}
		if len(p.Bearer) > media.MaxProviderBearer || !httpguts.ValidHeaderFieldValue(p.Bearer) || strings.TrimSpace(p.Bearer) != p.Bearer {
			return nil, invalid("%sconfig.bearer must be at most %d bytes, without control characters or surrounding spaces", path, media.MaxProviderBearer)
		}
	case hasBasic:
		basic, _, err := nested(cfg, "basic", "username", "password")
		if err != nil {
			return nil, err
		}
		if p.BasicUsername, err = requiredString(basic, "username"); err != nil {
			return nil, err
		}
		if p.BasicPassword, err = requiredString(basic, "password"); err != nil {
			return nil, err
		}
		if len(p.BasicUsername) > media.MaxProviderUsername || strings.Contains(p.BasicUsername, ":") || hasControl(p.BasicUsername) {
			return nil, invalid("%sconfig.basic.username must be at most %d bytes, without ':' or control characters", path, media.MaxProviderUsername)
		}
		if len(p.BasicPassword) > media.MaxProviderPassword || hasControl(p.BasicPassword) {
			return nil, invalid("%sconfig.basic.password must be at most %d bytes, without control characters", path, media.MaxProviderPassword)
		}
	default:
		return nil, missing("%sconfig.bearer or %sconfig.basic is required", path, path)
	}
	hosts, present, err := field[[]string](o, "hosts")
	switch {
	case err != nil:
		return nil, err
	case !present || len(hosts) == 0:
		return nil, missing("%shosts is required: the hosts this provider's credentials may be sent to", path)
	case len(hosts) > maxProviderHosts:
		return nil, invalid("%shosts has %d entries, more than %d", path, len(hosts), maxProviderHosts)
	}
	for i, h := range hosts {
		if h == "" || len(h) > maxProviderHost || !printableASCII(h) {
			return nil, invalid("%shosts[%d] must be a host name of at most %d characters", path, i, maxProviderHost)
		}
	}
	p.Hosts = hosts
	return p, nil
}

func hasControl(s string) bool {
	return strings.ContainsFunc(s, unicode.IsControl)
}
