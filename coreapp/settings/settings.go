// Package settings is the on-prem application settings object
// (/v1/settings/application): its defaults, the validation of a PATCH, and
// its storage per account. Account 0 holds the deployment's settings, used
// before any number is registered and copied into each new account.
//
// Most fields belong to a number (its webhooks, statuses, backoff, media);
// the fields in DeploymentFields drive every number (failover timing) and
// live in account 0 only: every account reads them from there, and only the
// admin (ActorAdmin) may change them. A tenant (an API key) that sends one
// gets error 1005.
//
// A Store is safe for concurrent use; it caches each account's settings for a
// few seconds, so a change made on another node is seen within CacheTTL.
package settings

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/openwaba/openwaba/api/errcode"
	"github.com/openwaba/openwaba/db"
	"github.com/openwaba/openwaba/media"
)

// Application is the settings object. Field names are the on-prem ones.
type Application struct {
	Webhooks                  Webhooks `json:"webhooks"`
	SentStatus                bool     `json:"sent_status"`
	CallbackPersist           bool     `json:"callback_persist"`
	CallbackBackoffDelayMs    int      `json:"callback_backoff_delay_ms"`
	MaxCallbackBackoffDelayMs int      `json:"max_callback_backoff_delay_ms"`
	HeartbeatInterval         int      `json:"heartbeat_interval"`
	UnhealthyInterval         int      `json:"unhealthy_interval"`
	Media                     Media    `json:"media"`
	NotifyUserChangeNumber    bool     `json:"notify_user_change_number"`
	ShowSecurityNotifications bool     `json:"show_security_notifications"`
	PassThrough               bool     `json:"pass_through"`
	WaID                      string   `json:"wa_id,omitempty"` // read-only
	Stored
}

// Stored are on-prem settings openwaba accepts, keeps and answers without
// acting on them (docs/settings.md says why for each), so an on-prem
// deployment's scripts PATCH them unchanged. Absent until set.
type Stored struct {
	DBGarbageCollectorEnable       *bool             `json:"db_garbagecollector_enable,omitempty"`
	GarbageCollectorEnable         *GarbageCollector `json:"garbagecollector_enable,omitempty"`
	AxolotlContextStripingDisabled *bool             `json:"axolotl_context_striping_disabled,omitempty"`
	OnCallPager                    *string           `json:"on_call_pager,omitempty"`
	VerboseLogging                 *bool             `json:"verbose_logging,omitempty"`
	LogLevel                       *string           `json:"log_level,omitempty"`
	TCPListenAddress               *string           `json:"tcp_listen_address,omitempty"`
	Webcallbacks                   json.RawMessage   `json:"webcallbacks,omitempty"`
}

// GarbageCollector is garbagecollector_enable.
type GarbageCollector struct {
	Messages *bool `json:"messages,omitempty"`
	Media    *bool `json:"media,omitempty"`
}

// logLevels are the log_level values on-prem documents.
var logLevels = []string{"debug", "info", "warning", "error"}

// maxStoredText bounds the stored strings and webcallbacks.
const maxStoredText = 4096

// Webhooks is the "webhooks" group.
type Webhooks struct {
	URL string `json:"url"`
	// ByTenant is set when a tenant (not the admin) set URL: the dispatcher
	// then reaches it only at public addresses (package egress). Stored,
	// never shown.
	ByTenant              bool    `json:"-"`
	MaxConcurrentRequests int     `json:"max_concurrent_requests"`
	Message               Message `json:"message"`
	// Headers are sent with every webhook (360dialog's /v1/configs/webhook;
	// an openwaba extension in this object).
	Headers map[string]string `json:"headers,omitempty"`
	// Format is the envelope of every POST: FormatOnPrem ("", the default)
	// or FormatCloud (set with /v1/configs/webhook). Stored, not part of
	// the on-prem settings object.
	Format string `json:"-"`
	// VerifyToken and AppSecret belong to the Cloud format: the
	// hub.verify_token of the subscription check, and the app secret that
	// signs every POST, sealed by the deployment keystore (coreapp seals
	// and opens it; never shown).
	VerifyToken string `json:"-"`
	AppSecret   []byte `json:"-"`
}

// The webhook formats.
const (
	FormatOnPrem = "onprem"
	FormatCloud  = "cloud"
)

// Cloud reports whether webhooks are posted in the Cloud API's envelope.
func (w Webhooks) Cloud() bool { return w.Format == FormatCloud }

// Message selects the status webhooks.
type Message struct {
	Sent      bool `json:"sent"`
	Delivered bool `json:"delivered"`
	Read      bool `json:"read"`
}

// Media is the "media" group.
type Media struct {
	AutoDownload []string `json:"auto_download"`
}

// Defaults returns the settings of a fresh deployment.
func Defaults() Application {
	return Application{
		Webhooks: Webhooks{
			MaxConcurrentRequests: 6,
			Message:               Message{Sent: false, Delivered: true, Read: true},
		},
		SentStatus:                false,
		CallbackPersist:           true,
		CallbackBackoffDelayMs:    3000,
		MaxCallbackBackoffDelayMs: 900000,
		// openwaba fails over within about unhealthy_interval + one
		// heartbeat (docs/architecture.md, "Slots and leases"); on-prem's
		// defaults are 5 and 30.
		HeartbeatInterval:         1,
		UnhealthyInterval:         3,
		Media:                     Media{AutoDownload: media.AutoDownloadTypes()},
		NotifyUserChangeNumber:    true,
		ShowSecurityNotifications: true,
	}
}

// SentEnabled reports whether "sent" status webhooks are on (either the
// legacy sent_status or webhooks.message.sent).
func (a Application) SentEnabled() bool { return a.SentStatus || a.Webhooks.Message.Sent }

// Error is a validation failure with its on-prem code: 1005 (a
// deployment-wide field changed by a tenant), 1008 (missing), 1009 (invalid
// value) or 1010 (unknown parameter).
type Error struct {
	Code    errcode.Code
	Details string
}

func (e *Error) Error() string { return fmt.Sprintf("%d: %s", e.Code, e.Details) }

// Actor is who changes settings.
type Actor int

const (
	// ActorTenant is anyone but the admin: an API key of a number (or a
	// caller of unknown kind). It changes the per-number fields only, and a
	// webhook URL it sets is guarded (see Webhooks.ByTenant).
	ActorTenant Actor = iota
	// ActorAdmin is the deployment's admin: every field.
	ActorAdmin
)

// DeploymentFields are the top-level settings that belong to the
// deployment rather than to a number: stored in account 0, admin-only.
var DeploymentFields = []string{"heartbeat_interval", "unhealthy_interval"}

// deploymentValues are the values of DeploymentFields.
type deploymentValues struct{ heartbeat, unhealthy int }

func deploymentOf(a Application) deploymentValues {
	return deploymentValues{a.HeartbeatInterval, a.UnhealthyInterval}
}

// deployment copies the deployment-wide fields of from into to.
func deployment(to *Application, from Application) {
	to.HeartbeatInterval = from.HeartbeatInterval
	to.UnhealthyInterval = from.UnhealthyInterval
}

// flexInt accepts 3000 and "3000" (on-prem documents these as strings).
type flexInt int

func (f *flexInt) UnmarshalJSON(b []byte) error {
	s := strings.Trim(string(b), `"`)
	n, err := strconv.Atoi(s)
	if err != nil {
		return fmt.Errorf("not an integer: %s", b)
	}
	*f = flexInt(n)
	return nil
}

type patch struct {
	Webhooks *struct {
		URL                   *string           `json:"url"`
		MaxConcurrentRequests *flexInt          `json:"max_concurrent_requests"`
		Message               *patchMessage     `json:"message"`
		Headers               map[string]string `json:"headers"`
	} `json:"webhooks"`
	SentStatus                *bool    `json:"sent_status"`
	CallbackPersist           *bool    `json:"callback_persist"`
	CallbackBackoffDelayMs    *flexInt `json:"callback_backoff_delay_ms"`
	MaxCallbackBackoffDelayMs *flexInt `json:"max_callback_backoff_delay_ms"`
	HeartbeatInterval         *flexInt `json:"heartbeat_interval"`
	UnhealthyInterval         *flexInt `json:"unhealthy_interval"`
	Media                     *struct {
		AutoDownload *[]string `json:"auto_download"`
	} `json:"media"`
	NotifyUserChangeNumber    *bool           `json:"notify_user_change_number"`
	ShowSecurityNotifications *bool           `json:"show_security_notifications"`
	PassThrough               *bool           `json:"pass_through"`
	WaID                      json.RawMessage `json:"wa_id"` // read-only: accepted and ignored, so a GET body can be PATCHed back
	Stored
}

type patchMessage struct {
	Sent      *bool `json:"sent"`
	Delivered *bool `json:"delivered"`
	Read      *bool `json:"read"`
}

var autoDownloadTypes = media.AutoDownloadTypes()

// maxConcurrent lists the allowed webhooks.max_concurrent_requests values.
var maxConcurrent = []int{6, 12, 18, 24}

// Apply validates the JSON patch and returns cur with it applied.
func Apply(cur Application, patchJSON []byte) (Application, error) {
	trimmed := bytes.TrimSpace(patchJSON)
	if len(trimmed) == 0 || trimmed[0] != '{' {
		return cur, &Error{errcode.Invalid, "the body must be a JSON object"}
	}
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(trimmed, &raw); err != nil {
		return cur, &Error{errcode.Invalid, "invalid JSON: " + err.Error()}
	}
	if len(raw) == 0 {
		return cur, &Error{errcode.Missing, "No valid parameters"}
	}
	var p patch
	dec := json.NewDecoder(bytes.NewReader(trimmed))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&p); err != nil {
		return cur, decodeError(err)
	}
	next := cur
	next.Webhooks.Headers = cloneMap(cur.Webhooks.Headers)
	next.Media.AutoDownload = slices.Clone(cur.Media.AutoDownload)
	if w := p.Webhooks; w != nil {
		if w.URL != nil {
			if err := ValidateWebhookURL(*w.URL); err != nil {
				return cur, err
			}
			next.Webhooks.URL = *w.URL
		}
		if w.MaxConcurrentRequests != nil {
			n := int(*w.MaxConcurrentRequests)
			if !slices.Contains(maxConcurrent, n) {
				return cur, &Error{errcode.Invalid, "webhooks.max_concurrent_requests must be 6, 12, 18 or 24"}
			}
			next.Webhooks.MaxConcurrentRequests = n
		}
		if m := w.Message; m != nil {
			setBool(&next.Webhooks.Message.Sent, m.Sent)
			setBool(&next.Webhooks.Message.Delivered, m.Delivered)
			setBool(&next.Webhooks.Message.Read, m.Read)
		}
		if w.Headers != nil {
			if err := ValidateHeaders(w.Headers); err != nil {
				return cur, err
			}
			next.Webhooks.Headers = w.Headers
		}
	}
	setBool(&next.SentStatus, p.SentStatus)
	setBool(&next.CallbackPersist, p.CallbackPersist)
	setBool(&next.NotifyUserChangeNumber, p.NotifyUserChangeNumber)
	setBool(&next.ShowSecurityNotifications, p.ShowSecurityNotifications)
	if p.PassThrough != nil {
		// On-prem: "cannot be re-enabled since v2.35"; turning it off is
		// always allowed.
		if *p.PassThrough && !cur.PassThrough {
			return cur, &Error{errcode.Invalid, "pass_through cannot be enabled (on-prem since v2.35); it can only be turned off"}
		}
		next.PassThrough = *p.PassThrough
	}
	if err := applyStored(&next.Stored, p.Stored); err != nil {
		return cur, err
	}
	for _, r := range []struct {
		name     string
		v        *flexInt
		dst      *int
		min, max int
	}{
		{"callback_backoff_delay_ms", p.CallbackBackoffDelayMs, &next.CallbackBackoffDelayMs, 1, 86_400_000},
		{"max_callback_backoff_delay_ms", p.MaxCallbackBackoffDelayMs, &next.MaxCallbackBackoffDelayMs, 1, 86_400_000},
		{"heartbeat_interval", p.HeartbeatInterval, &next.HeartbeatInterval, 1, 3600},
		{"unhealthy_interval", p.UnhealthyInterval, &next.UnhealthyInterval, 1, 3600},
	} {
		if r.v == nil {
			continue
		}
		if n := int(*r.v); n < r.min || n > r.max {
			return cur, &Error{errcode.Invalid, fmt.Sprintf("%s must be between %d and %d", r.name, r.min, r.max)}
		}
		*r.dst = int(*r.v)
	}
	if next.MaxCallbackBackoffDelayMs < next.CallbackBackoffDelayMs {
		return cur, &Error{errcode.Invalid, "max_callback_backoff_delay_ms must not be smaller than callback_backoff_delay_ms"}
	}
	if next.UnhealthyInterval < next.HeartbeatInterval {
		return cur, &Error{errcode.Invalid, "unhealthy_interval must not be smaller than heartbeat_interval"}
	}
	if p.Media != nil && p.Media.AutoDownload != nil {
		if n := len(*p.Media.AutoDownload); n > len(autoDownloadTypes) {
			return cur, &Error{errcode.Invalid, fmt.Sprintf("media.auto_download has %d entries; there are %d types", n, len(autoDownloadTypes))}
		}
		for i, t := range *p.Media.AutoDownload {
			if !slices.Contains(autoDownloadTypes, t) {
				return cur, &Error{errcode.Invalid, fmt.Sprintf("media.auto_download: unknown type %q (allowed: %s)", t, strings.Join(autoDownloadTypes, ", "))}
			}
			if slices.Contains((*p.Media.AutoDownload)[:i], t) {
				return cur, &Error{errcode.Invalid, fmt.Sprintf("media.auto_download: %q is given twice", t)}
			}
		}
		next.Media.AutoDownload = *p.Media.AutoDownload
	}
	return next, nil
}

func setBool(dst *bool, v *bool) {
	if v != nil {
		*dst = *v
	}
}

func cloneMap(m map[string]string) map[string]string {
	if m == nil {
		return nil
	}
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

func decodeError(err error) error {
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		return &Error{errcode.Invalid, fmt.Sprintf("%s must be of type %s", te.Field, te.Type)}
	}
	msg := err.Error()
	if f, ok := strings.CutPrefix(msg, "json: unknown field "); ok {
		return &Error{errcode.NotRequired, "unknown parameter " + f}
	}
	return &Error{errcode.Invalid, msg}
}

// ValidateWebhookURL accepts "" (webhooks off), https URLs, and plain http
// to a loopback address (for development).
func ValidateWebhookURL(s string) error {
	if s == "" {
		return nil
	}
	if len(s) > 2048 {
		return &Error{errcode.Invalid, "webhooks.url is longer than 2048 characters"}
	}
	u, err := url.Parse(s)
	if err != nil || u.Host == "" {
		return &Error{errcode.Invalid, "webhooks.url is not a valid URL"}
	}
	switch u.Scheme {
	case "https":
		return nil
	case "http":
		if isLoopback(u.Hostname()) {
			return nil
		}
		return &Error{errcode.Invalid, "webhooks.url must use https (plain http is allowed only to a loopback address)"}
	}
	return &Error{errcode.Invalid, "webhooks.url must use https"}
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// ValidateHeaders checks extra webhook headers: at most 20, valid names,
// values of at most 1024 bytes without line breaks.
func ValidateHeaders(h map[string]string) error {
	if len(h) > 20 {
		return &Error{errcode.Invalid, "at most 20 webhook headers"}
	}
	for k, v := range h {
		if k == "" || strings.ContainsFunc(k, func(r rune) bool { return r <= ' ' || r >= 0x7f || strings.ContainsRune("()<>@,;:\\\"/[]?={}", r) }) {
			return &Error{errcode.Invalid, fmt.Sprintf("header name %q is not a valid HTTP header name", k)}
		}
		if http.CanonicalHeaderKey(k) == "Content-Type" || http.CanonicalHeaderKey(k) == "Content-Length" || http.CanonicalHeaderKey(k) == "Host" {
			return &Error{errcode.Invalid, fmt.Sprintf("header %q cannot be overridden", k)}
		}
		if len(v) > 1024 || strings.ContainsAny(v, "\r\n") {
			return &Error{errcode.Invalid, fmt.Sprintf("header %q: value too long or with a line break", k)}
		}
	}
	return nil
}

// CacheTTL is how long a Store serves an account's settings from memory.
const CacheTTL = 2 * time.Second

// Store keeps settings in the app_settings table.
type Store struct {
	db *sql.DB
	// CheckTenantURL, when set, vets a webhook URL a tenant sets (the
	// egress guard: public addresses only); its error is shown to the
	// tenant.
	CheckTenantURL func(ctx context.Context, rawURL string) error

	mu    sync.Mutex // guards cache
	cache map[int64]cached
}

type cached struct {
	app Application
	at  time.Time
}

// NewStore returns a Store on d.
func NewStore(d *sql.DB) *Store { return &Store{db: d, cache: map[int64]cached{}} }

// stored is the app_settings document: the settings and what Application
// keeps out of its JSON.
type stored struct {
	Application
	WebhookURLByTenant bool   `json:"webhook_url_by_tenant,omitempty"`
	WebhookFormat      string `json:"webhook_format,omitempty"`
	WebhookVerifyToken string `json:"webhook_verify_token,omitempty"`
	WebhookAppSecret   []byte `json:"webhook_app_secret,omitempty"` // sealed
}

func encode(app Application) ([]byte, error) {
	app.WaID = ""
	w := app.Webhooks
	return json.Marshal(stored{Application: app, WebhookURLByTenant: w.ByTenant, WebhookFormat: w.Format, WebhookVerifyToken: w.VerifyToken, WebhookAppSecret: w.AppSecret})
}

func decode(doc []byte) (Application, error) {
	st := stored{Application: Defaults()}
	if err := json.Unmarshal(doc, &st); err != nil {
		return Application{}, err
	}
	w := &st.Application.Webhooks
	w.ByTenant, w.Format, w.VerifyToken, w.AppSecret = st.WebhookURLByTenant, st.WebhookFormat, st.WebhookVerifyToken, st.WebhookAppSecret
	return st.Application, nil
}

// load reads the documents of accountID and of the deployment (account 0)
// with q (a plain or locking SELECT).
func load(ctx context.Context, q interface {
	QueryContext(context.Context, string, ...any) (*sql.Rows, error)
}, accountID int64, lock bool) (own, dep *Application, err error) {
	query := "SELECT account_id, doc FROM app_settings WHERE account_id IN (?, 0)"
	if lock {
		query += " ORDER BY account_id FOR UPDATE"
	}
	rows, err := q.QueryContext(ctx, query, accountID)
	if err != nil {
		return nil, nil, fmt.Errorf("load settings: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var id int64
		var doc []byte
		if err := rows.Scan(&id, &doc); err != nil {
			return nil, nil, err
		}
		app, err := decode(doc)
		if err != nil {
			return nil, nil, fmt.Errorf("stored settings of account %d: %w", id, err)
		}
		if id == 0 {
			dep = &app
		}
		if id == accountID {
			own = &app
		}
	}
	return own, dep, rows.Err()
}

// merged is the effective settings of an account: its own document (or the
// deployment's, or the defaults) with the deployment-wide fields of account
// 0.
func merged(own, dep *Application) Application {
	app := Defaults()
	switch {
	case own != nil:
		app = *own
	case dep != nil:
		app = *dep
	}
	if dep != nil {
		deployment(&app, *dep)
	} else {
		deployment(&app, Defaults())
	}
	return app
}

// Get returns the settings of accountID (0: the deployment's): its own,
// else the deployment's, else Defaults, always with the deployment-wide
// fields of account 0.
func (s *Store) Get(ctx context.Context, accountID int64) (Application, error) {
	s.mu.Lock()
	c, ok := s.cache[accountID]
	s.mu.Unlock()
	if ok && time.Since(c.at) < CacheTTL {
		return c.app, nil
	}
	own, dep, err := load(ctx, s.db, accountID, false)
	if err != nil {
		return Defaults(), err
	}
	app := merged(own, dep)
	s.remember(accountID, app)
	return app, nil
}

func (s *Store) remember(accountID int64, app Application) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if accountID == 0 {
		clear(s.cache) // every account reads the deployment-wide fields
	}
	s.cache[accountID] = cached{app, time.Now()}
}

func put(ctx context.Context, tx *sql.Tx, accountID int64, app Application) error {
	doc, err := encode(app)
	if err != nil {
		return err
	}
	_, err = tx.ExecContext(ctx,
		"INSERT INTO app_settings (account_id, doc, updated_at) VALUES (?, ?, ?) ON DUPLICATE KEY UPDATE doc = VALUES(doc), updated_at = VALUES(updated_at)",
		accountID, doc, db.NowMillis())
	if err != nil {
		return fmt.Errorf("store settings: %w", err)
	}
	return nil
}

// deploymentKeys returns the deployment-wide top-level keys of a patch.
func deploymentKeys(patchJSON []byte) []string {
	var raw map[string]json.RawMessage
	if json.Unmarshal(patchJSON, &raw) != nil {
		return nil
	}
	var out []string
	for _, k := range DeploymentFields {
		if _, ok := raw[k]; ok {
			out = append(out, k)
		}
	}
	return out
}

// patchURL returns the webhooks.url a patch sets, if any.
// SetsWebhookURL reports whether a settings patch sets webhooks.url.
func SetsWebhookURL(patchJSON []byte) bool {
	_, ok := patchURL(patchJSON)
	return ok
}

func patchURL(patchJSON []byte) (string, bool) {
	var p struct {
		Webhooks *struct {
			URL *string `json:"url"`
		} `json:"webhooks"`
	}
	if json.Unmarshal(patchJSON, &p) != nil || p.Webhooks == nil || p.Webhooks.URL == nil {
		return "", false
	}
	return *p.Webhooks.URL, true
}

// Update applies a JSON patch, made by actor, to the settings of
// accountID under a row lock, so concurrent PATCHes do not lose each
// other's fields. Deployment-wide fields are the admin's only (else error
// 1005) and are written to account 0; a webhook URL set by a tenant must
// pass CheckTenantURL.
func (s *Store) Update(ctx context.Context, accountID int64, patchJSON []byte, actor Actor) (Application, error) {
	return s.update(ctx, accountID, patchJSON, actor, nil)
}

// CloudWebhook is what the Cloud format adds to a webhook URL.
type CloudWebhook struct {
	VerifyToken string
	AppSecret   []byte // sealed
}

// SetWebhook sets webhooks.url and the extra headers (replacing them), and
// the format: Cloud with cloud's token and secret, else on-prem.
func (s *Store) SetWebhook(ctx context.Context, accountID int64, url string, headers map[string]string, cloud *CloudWebhook, actor Actor) (Application, error) {
	if headers == nil {
		headers = map[string]string{}
	}
	patch, err := json.Marshal(map[string]any{"webhooks": map[string]any{"url": url, "headers": headers}})
	if err != nil {
		return Application{}, err
	}
	return s.update(ctx, accountID, patch, actor, func(w *Webhooks) {
		w.Format, w.VerifyToken, w.AppSecret = FormatOnPrem, "", nil
		if cloud != nil {
			w.Format, w.VerifyToken, w.AppSecret = FormatCloud, cloud.VerifyToken, cloud.AppSecret
		}
	})
}

func (s *Store) update(ctx context.Context, accountID int64, patchJSON []byte, actor Actor, webhooks func(*Webhooks)) (Application, error) {
	depKeys := deploymentKeys(patchJSON)
	url, setsURL := patchURL(patchJSON)
	if setsURL && url != "" && actor != ActorAdmin && s.CheckTenantURL != nil {
		if err := ValidateWebhookURL(url); err != nil {
			return Application{}, err
		}
		if err := s.CheckTenantURL(ctx, url); err != nil {
			return Application{}, &Error{errcode.Invalid, "webhooks.url is refused: " + err.Error() + " (a deployment inside a private network sets WA_WEBHOOK_ALLOW_PRIVATE=true)"}
		}
	}
	var next, dep Application
	err := db.Tx(ctx, s.db, func(tx *sql.Tx) error {
		own, depDoc, err := load(ctx, tx, accountID, true)
		if err != nil {
			return err
		}
		cur := merged(own, depDoc)
		if next, err = Apply(cur, patchJSON); err != nil {
			return err
		}
		if actor != ActorAdmin {
			// The same values are accepted (a GET body PATCHed back),
			// a change is not.
			if deploymentOf(cur) != deploymentOf(next) {
				return &Error{errcode.AccessDenied, fmt.Sprintf("%s is a deployment-wide setting (it drives every number's failover): only the admin may change it", strings.Join(depKeys, ", "))}
			}
			depKeys = nil
		}
		if setsURL {
			next.Webhooks.ByTenant = url != "" && actor != ActorAdmin
		}
		if webhooks != nil {
			webhooks(&next.Webhooks)
		}
		if err := put(ctx, tx, accountID, next); err != nil {
			return err
		}
		dep = next
		if accountID != 0 && len(depKeys) > 0 {
			dep = Defaults()
			if depDoc != nil {
				dep = *depDoc
			}
			deployment(&dep, next)
			return put(ctx, tx, 0, dep)
		}
		return nil
	})
	if err != nil {
		return Application{}, err
	}
	if accountID != 0 && len(depKeys) > 0 {
		s.remember(0, merged(&dep, &dep))
	}
	s.remember(accountID, next)
	return next, nil
}

// Reset restores the defaults of accountID's per-number fields; the admin's
// reset restores the deployment-wide fields too.
func (s *Store) Reset(ctx context.Context, accountID int64, actor Actor) (Application, error) {
	var app Application
	err := db.Tx(ctx, s.db, func(tx *sql.Tx) error {
		_, depDoc, err := load(ctx, tx, accountID, true)
		if err != nil {
			return err
		}
		app = Defaults()
		if actor == ActorAdmin {
			if accountID != 0 {
				dep := Defaults()
				if depDoc != nil {
					dep = *depDoc
				}
				deployment(&dep, Defaults())
				if err := put(ctx, tx, 0, dep); err != nil {
					return err
				}
			}
		} else if depDoc != nil {
			deployment(&app, *depDoc)
		}
		return put(ctx, tx, accountID, app)
	})
	if err != nil {
		return Application{}, err
	}
	s.mu.Lock()
	clear(s.cache)
	s.mu.Unlock()
	return s.Get(ctx, accountID)
}

// applyStored checks the stored-only settings of a patch and sets those given.
func applyStored(dst *Stored, p Stored) error {
	for _, v := range []struct {
		name string
		s    *string
	}{{"on_call_pager", p.OnCallPager}, {"log_level", p.LogLevel}, {"tcp_listen_address", p.TCPListenAddress}} {
		if v.s != nil && len(*v.s) > maxStoredText {
			return &Error{errcode.Invalid, fmt.Sprintf("%s is longer than %d characters", v.name, maxStoredText)}
		}
	}
	if p.LogLevel != nil && !slices.Contains(logLevels, *p.LogLevel) {
		return &Error{errcode.Invalid, "log_level must be one of " + strings.Join(logLevels, ", ")}
	}
	if len(p.Webcallbacks) > maxStoredText {
		return &Error{errcode.Invalid, fmt.Sprintf("webcallbacks is larger than %d bytes", maxStoredText)}
	}
	if p.DBGarbageCollectorEnable != nil {
		dst.DBGarbageCollectorEnable = p.DBGarbageCollectorEnable
	}
	if g := p.GarbageCollectorEnable; g != nil {
		next := GarbageCollector{}
		if dst.GarbageCollectorEnable != nil {
			next = *dst.GarbageCollectorEnable
		}
		if g.Messages != nil {
			next.Messages = g.Messages
		}
		if g.Media != nil {
			next.Media = g.Media
		}
		dst.GarbageCollectorEnable = &next
	}
	for _, v := range []struct {
		dst **bool
		src *bool
	}{{&dst.AxolotlContextStripingDisabled, p.AxolotlContextStripingDisabled}, {&dst.VerboseLogging, p.VerboseLogging}} {
		if v.src != nil {
			*v.dst = v.src
		}
	}
	for _, v := range []struct {
		dst **string
		src *string
	}{{&dst.OnCallPager, p.OnCallPager}, {&dst.LogLevel, p.LogLevel}, {&dst.TCPListenAddress, p.TCPListenAddress}} {
		if v.src != nil {
			*v.dst = v.src
		}
	}
	if len(p.Webcallbacks) > 0 {
		dst.Webcallbacks = p.Webcallbacks
	}
	return nil
}
