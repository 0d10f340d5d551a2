package api

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strconv"

	"github.com/labstack/echo/v4"
	"golang.org/x/net/http/httpguts"

	corev1 "github.com/openwaba/openwaba/proto/gen/core/v1"
)

type settingsResponse struct {
	Settings applicationSettings `json:"settings"`
	Meta     meta                `json:"meta"`
}

type applicationSettings struct {
	Application json.RawMessage `json:"application"`
}

// settingsJSON checks that coreapp's settings are one JSON object (empty
// means no settings).
func settingsJSON(b []byte) (json.RawMessage, error) {
	if len(b) == 0 {
		return json.RawMessage("{}"), nil
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(b, &m); err != nil || m == nil {
		return nil, internal(fmt.Errorf("coreapp returned settings that are not a JSON object: %v", err))
	}
	return json.RawMessage(b), nil
}

// getSettings: GET /v1/settings/application (admin or API key).
func (s *Server) getSettings(c echo.Context) error {
	resp, err := call(s, c, s.opts.CallTimeout, s.core.GetSettings, &corev1.GetSettingsRequest{Account: principalOf(c).account()})
	if err != nil {
		return err
	}
	app, err := settingsJSON(resp.GetJson())
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, settingsResponse{Settings: applicationSettings{Application: app}, Meta: s.meta})
}

// patchSettings: PATCH /v1/settings/application (admin or API key). The body
// must be a JSON object; coreapp validates its fields.
func (s *Server) patchSettings(c echo.Context) error {
	b, err := readBody(c)
	if err != nil {
		return err
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(b, &m); err != nil || m == nil {
		return invalid("the request body must be a JSON object of settings")
	}
	req := &corev1.UpdateSettingsRequest{Account: principalOf(c).account(), PatchJson: b}
	if _, err := call(s, c, s.opts.CallTimeout, s.core.UpdateSettings, req); err != nil {
		return err
	}
	return c.JSON(http.StatusOK, metaOnly{Meta: s.meta})
}

// resetSettings: DELETE /v1/settings/application (admin or API key).
func (s *Server) resetSettings(c echo.Context) error {
	if _, err := call(s, c, s.opts.CallTimeout, s.core.ResetSettings, &corev1.ResetSettingsRequest{Account: principalOf(c).account()}); err != nil {
		return err
	}
	return c.JSON(http.StatusOK, metaOnly{Meta: s.meta})
}

// Limits on the webhook configuration.
const (
	MaxWebhookHeaders     = 20
	MaxWebhookHeaderValue = 1024
	MaxWebhookURL         = 2048
	// MaxWebhookSecret is the longest verify_token and app_secret.
	MaxWebhookSecret = 256
)

type webhookResponse struct {
	URL     string            `json:"url"`
	Headers map[string]string `json:"headers"`
	// Format is "onprem" or "cloud"; the Cloud format's secrets are
	// masked.
	Format      string `json:"format"`
	VerifyToken string `json:"verify_token,omitempty"`
	AppSecret   string `json:"app_secret,omitempty"`
	Meta        meta   `json:"meta"`
}

func (s *Server) webhookReply(c echo.Context, cfg *corev1.WebhookConfig) error {
	h := cfg.GetHeaders()
	if h == nil {
		h = map[string]string{}
	}
	f := cfg.GetFormat()
	if f == "" {
		f = "onprem"
	}
	return c.JSON(http.StatusOK, webhookResponse{URL: cfg.GetUrl(), Headers: h, Format: f, VerifyToken: cfg.GetVerifyToken(), AppSecret: cfg.GetAppSecret(), Meta: s.meta})
}

// parseWebhook validates {"url": "...", "headers": {...}, "format",
// "verify_token", "app_secret"}.
func parseWebhook(o object) (*corev1.WebhookConfig, error) {
	raw, err := requiredString(o, "url")
	if err != nil {
		return nil, err
	}
	if err := webhookURL(raw); err != nil {
		return nil, err
	}
	headers, _, err := webhookHeaders(o)
	if err != nil {
		return nil, err
	}
	cfg := &corev1.WebhookConfig{Url: raw, Headers: headers}
	for _, f := range []struct {
		name string
		dst  *string
	}{{"format", &cfg.Format}, {"verify_token", &cfg.VerifyToken}, {"app_secret", &cfg.AppSecret}} {
		if *f.dst, _, err = field[string](o, f.name); err != nil {
			return nil, err
		}
	}
	switch cfg.Format {
	case "", "onprem":
		if cfg.VerifyToken != "" || cfg.AppSecret != "" {
			return nil, notRequired(`verify_token and app_secret belong to format "cloud"`)
		}
	case "cloud":
		if cfg.AppSecret == "" {
			return nil, missing(`app_secret is required for format "cloud": it signs every webhook (X-Hub-Signature-256)`)
		}
	default:
		return nil, invalid(`format must be "onprem" or "cloud"`)
	}
	for _, v := range []string{cfg.VerifyToken, cfg.AppSecret} {
		if len(v) > MaxWebhookSecret || !printableASCII(v) {
			return nil, invalid("verify_token and app_secret must be at most %d printable ASCII characters", MaxWebhookSecret)
		}
	}
	return cfg, nil
}

// webhookHeaders reads and checks the extra headers of a webhook endpoint
// ("headers": {name: value}); present reports whether the body has them.
func webhookHeaders(o object) (headers map[string]string, present bool, err error) {
	headers, present, err = field[map[string]string](o, "headers")
	if err != nil {
		return nil, false, err
	}
	if len(headers) > MaxWebhookHeaders {
		return nil, false, invalid("headers has %d entries, more than %d", len(headers), MaxWebhookHeaders)
	}
	for k, v := range headers {
		if !httpguts.ValidHeaderFieldName(k) {
			return nil, false, invalid("headers: %q is not a valid HTTP header name", k)
		}
		if len(v) > MaxWebhookHeaderValue || !httpguts.ValidHeaderFieldValue(v) {
			return nil, false, invalid("headers: the value of %s must be at most %d characters without control characters", k, MaxWebhookHeaderValue)
		}
	}
	return headers, present, nil
}

// webhookURL checks an endpoint URL as the webapp can (coreapp applies the
// https and tenant rules).
func webhookURL(raw string) error {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || len(raw) > MaxWebhookURL {
		return invalid("url must be an absolute http or https URL of at most %d characters", MaxWebhookURL)
	}
	return nil
}

// setWebhook: POST /v1/configs/webhook (admin or API key).
func (s *Server) setWebhook(c echo.Context) error {
	o, err := readObject(c, "url", "headers", "format", "verify_token", "app_secret")
	if err != nil {
		return err
	}
	cfg, err := parseWebhook(o)
	if err != nil {
		return err
	}
	resp, err := call(s, c, s.opts.CallTimeout, s.core.SetWebhookConfig, &corev1.SetWebhookConfigRequest{Account: principalOf(c).account(), Config: cfg})
	if err != nil {
		return err
	}
	return s.webhookReply(c, resp)
}

// getWebhook: GET /v1/configs/webhook (admin or API key).
func (s *Server) getWebhook(c echo.Context) error {
	resp, err := call(s, c, s.opts.CallTimeout, s.core.GetWebhookConfig, &corev1.GetWebhookConfigRequest{Account: principalOf(c).account()})
	if err != nil {
		return err
	}
	return s.webhookReply(c, resp)
}

type phoneNumberResponse struct {
	PhoneNumber string `json:"phone_number"`
	// The Cloud API's ids (package api/graph): the number's and its
	// business account's.
	PhoneNumberID string `json:"phone_number_id"`
	WABAID        string `json:"waba_id"`
	Meta          meta   `json:"meta"`
}

// phoneNumber: GET /v1/configs/phone_number (any principal).
func (s *Server) phoneNumber(c echo.Context) error {
	acct, err := call(s, c, s.opts.CallTimeout, s.core.GetAccount, &corev1.GetAccountRequest{Account: principalOf(c).account()})
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, phoneNumberResponse{PhoneNumber: acct.GetWaId(), PhoneNumberID: strconv.FormatInt(acct.GetPhoneNumberId(), 10),
		WABAID: strconv.FormatInt(acct.GetWabaId(), 10), Meta: s.meta})
}

type healthResponse struct {
	Health   gatewayStatus  `json:"health"`
	Webhooks *webhookHealth `json:"webhooks,omitempty"`
	Meta     meta           `json:"meta"`
}

// webhookHealth counts the number's deliveries that need attention: beside
// "health", so on-prem clients reading it are not disturbed.
type webhookHealth struct {
	Failing int64 `json:"failing"`
	Dead    int64 `json:"dead"`
}

func toWebhookHealth(w *corev1.WebhookCounts) *webhookHealth {
	if w == nil {
		return nil
	}
	return &webhookHealth{Failing: w.GetFailing(), Dead: w.GetDead()}
}

type gatewayStatus struct {
	GatewayStatus string `json:"gateway_status"`
}

// nodesHealthResponse is the multi-node shape: health keyed by node.
type nodesHealthResponse struct {
	Health   map[string]nodeHealth `json:"health"`
	Webhooks *webhookHealth        `json:"webhooks,omitempty"`
	Meta     meta                  `json:"meta"`
}

type nodeHealth struct {
	GatewayStatus string `json:"gateway_status"`
	Role          string `json:"role"`
}

// health: GET /v1/health (any principal or the monitoring key). With more
// than one node in coreapp's answer, the on-prem multi-node shape
// {"health":{"<node>":{"gateway_status","role"},…}}; else the single shape
// {"health":{"gateway_status"}}.
func (s *Server) health(c echo.Context) error {
	resp, err := call(s, c, s.opts.CallTimeout, s.core.GetHealth, &corev1.GetHealthRequest{Account: principalOf(c).account()})
	if err != nil {
		return err
	}
	if nodes := resp.GetNodes(); len(nodes) > 1 {
		out := nodesHealthResponse{Health: make(map[string]nodeHealth, len(nodes)), Webhooks: toWebhookHealth(resp.GetWebhooks()), Meta: s.meta}
		for _, n := range nodes {
			out.Health[n.GetNode()] = nodeHealth{GatewayStatus: n.GetGatewayStatus(), Role: n.GetRole()}
		}
		return c.JSON(http.StatusOK, out)
	}
	return c.JSON(http.StatusOK, healthResponse{Health: gatewayStatus{GatewayStatus: resp.GetGatewayStatus()}, Webhooks: toWebhookHealth(resp.GetWebhooks()), Meta: s.meta})
}
