package webhook

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/openwaba/openwaba/api/webhooksign"
	"github.com/openwaba/openwaba/coreapp/settings"
	"github.com/openwaba/openwaba/db"
)

// Topics name what an event is about; an endpoint's Events filter lists
// topics (or their group: "statuses" is every statuses.* topic).
const (
	TopicMessages = "messages"
	// TopicStatuses groups statuses.sent, statuses.delivered,
	// statuses.read, statuses.failed and any other status.
	TopicStatuses  = "statuses"
	TopicTemplates = "templates"
	// TopicSystem is service reports (media garbage collection) and system
	// messages (a customer's changed security code).
	TopicSystem = "system"
)

// Topics is every value an Events filter may hold.
var Topics = []string{TopicMessages, TopicStatuses, "statuses.sent", "statuses.delivered", "statuses.read", "statuses.failed", TopicTemplates, TopicSystem}

// topicOf is the topic of an event and the message id it is about.
func topicOf(kind string, payload []byte) (topic, ref string) {
	switch kind {
	case KindStatus:
		var s struct{ ID, Status string }
		json.Unmarshal(payload, &s)
		return TopicStatuses + "." + s.Status, s.ID
	case KindMessage:
		var e struct {
			Message struct{ ID, Type string } `json:"message"`
		}
		json.Unmarshal(payload, &e)
		if e.Message.Type == "system" {
			return TopicSystem, e.Message.ID
		}
		return TopicMessages, e.Message.ID
	case KindTemplateStatus:
		return TopicTemplates, ""
	}
	return TopicSystem, ""
}

// Matches reports whether an Events filter takes topic: an empty filter
// takes everything.
func Matches(filter []string, topic string) bool {
	if len(filter) == 0 {
		return true
	}
	group, _, _ := strings.Cut(topic, ".")
	return slices.Contains(filter, topic) || slices.Contains(filter, group)
}

// ValidTopics reports the first value of filter that is not a topic.
func ValidTopics(filter []string) error {
	for _, t := range filter {
		if !slices.Contains(Topics, t) {
			return fmt.Errorf("events: %q is not one of %s", t, strings.Join(Topics, ", "))
		}
	}
	return nil
}

// DefaultEndpoint is the id of a number's first endpoint: webhooks.url
// (or /v1/configs/webhook) with its headers and format.
const DefaultEndpoint = 0

// Endpoint is one receiver of a number's events. The first endpoint's URL,
// headers and format are its settings' (ID DefaultEndpoint); its events
// filter and signing secret are kept like another endpoint's.
type Endpoint struct {
	ID        int64
	AccountID int64
	URL       string
	Headers   map[string]string
	// Format is settings.FormatOnPrem or settings.FormatCloud.
	Format string
	// Events filters what the endpoint gets (empty: everything).
	Events   []string
	ByTenant bool
	// Signed is set when the endpoint has a signing secret;
	// PreviousUntil is when a rotated-out secret stops being valid (zero:
	// none).
	Signed        bool
	PreviousUntil time.Time
	CreatedAt     time.Time
	UpdatedAt     time.Time

	secret, prevSecret []byte // sealed
}

// Errors of the endpoint calls.
var (
	ErrNoEndpoint = errors.New("no such webhook endpoint")
	// ErrDefaultEndpoint refuses to delete the first endpoint or change
	// what its settings own.
	ErrDefaultEndpoint = errors.New("the first endpoint is webhooks.url: change it with /v1/settings/application or /v1/configs/webhook")
	// ErrBadSecret is a signing secret that is not whsec_ and base64.
	ErrBadSecret = errors.New("bad signing secret")
)

// MaxEndpoints caps a number's endpoints besides the first.
const MaxEndpoints = 10

// MaxGrace is the longest grace period of a rotated-out secret.
const MaxGrace = 7 * 24 * time.Hour

// SecretContext is the keystore context of endpoint signing secrets.
const SecretContext = "webhook_signing_secret"

const endpointColumns = "id, account_id, is_default, url, headers, format, events, by_tenant, secret, prev_secret, prev_secret_until, created_at, updated_at"

func scanEndpoint(sc interface{ Scan(...any) error }) (Endpoint, bool, error) {
	var (
		e                Endpoint
		isDefault        bool
		headers, events  []byte
		prevUntil, c, up int64
	)
	if err := sc.Scan(&e.ID, &e.AccountID, &isDefault, &e.URL, &headers, &e.Format, &events, &e.ByTenant, &e.secret, &e.prevSecret, &prevUntil, &c, &up); err != nil {
		return e, false, err
	}
	if err := json.Unmarshal(headers, &e.Headers); err != nil && len(headers) > 0 {
		return e, false, fmt.Errorf("webhook endpoint %d: stored headers are not a JSON object: %w", e.ID, err)
	}
	if err := json.Unmarshal(events, &e.Events); err != nil && len(events) > 0 {
		return e, false, fmt.Errorf("webhook endpoint %d: stored events filter is not a JSON list: %w", e.ID, err)
	}
	e.Signed = len(e.secret) > 0
	if prevUntil > 0 && len(e.prevSecret) > 0 {
		e.PreviousUntil = time.UnixMilli(prevUntil)
	}
	e.CreatedAt, e.UpdatedAt = time.UnixMilli(c), time.UnixMilli(up)
	if isDefault {
		e.ID = DefaultEndpoint
	}
	return e, isDefault, nil
}

// withSettings fills the first endpoint from the number's settings.
func withSettings(e Endpoint, w settings.Webhooks) Endpoint {
	e.ID, e.URL, e.Headers, e.Format, e.ByTenant = DefaultEndpoint, w.URL, w.Headers, w.Format, w.ByTenant
	if e.Format == "" {
		e.Format = settings.FormatOnPrem
	}
	return e
}

// Endpoints lists a number's endpoints, the first one first (when it has a
// URL).
func (d *Dispatcher) Endpoints(ctx context.Context, accountID int64) ([]Endpoint, error) {
	app, err := d.settings.Get(ctx, accountID)
	if err != nil {
		return nil, err
	}
	rows, err := d.db.QueryContext(ctx, "SELECT "+endpointColumns+" FROM webhook_endpoints WHERE account_id = ? ORDER BY id", accountID)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	first := Endpoint{AccountID: accountID}
	var out []Endpoint
	for rows.Next() {
		e, isDefault, err := scanEndpoint(rows)
		if err != nil {
			return nil, err
		}
		if isDefault {
			first = e
			continue
		}
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	if app.Webhooks.URL != "" {
		out = append([]Endpoint{withSettings(first, app.Webhooks)}, out...)
	}
	return out, nil
}

// Endpoint returns one endpoint of a number.
func (d *Dispatcher) Endpoint(ctx context.Context, accountID, id int64) (Endpoint, error) {
	if id == DefaultEndpoint {
		app, err := d.settings.Get(ctx, accountID)
		if err != nil {
			return Endpoint{}, err
		}
		e, err := d.defaultRow(ctx, d.db, accountID)
		if err != nil {
			return Endpoint{}, err
		}
		return withSettings(e, app.Webhooks), nil
	}
	e, _, err := scanEndpoint(d.db.QueryRowContext(ctx, "SELECT "+endpointColumns+" FROM webhook_endpoints WHERE account_id = ? AND id = ? AND is_default = 0", accountID, id))
	if errors.Is(err, sql.ErrNoRows) {
		return e, ErrNoEndpoint
	}
	return e, err
}

type querier interface {
	QueryRowContext(ctx context.Context, q string, args ...any) *sql.Row
}

// defaultRow is the stored part of the first endpoint (none yet: everything,
// unsigned).
func (d *Dispatcher) defaultRow(ctx context.Context, q querier, accountID int64) (Endpoint, error) {
	e, _, err := scanEndpoint(q.QueryRowContext(ctx, "SELECT "+endpointColumns+" FROM webhook_endpoints WHERE account_id = ? AND is_default = 1", accountID))
	if errors.Is(err, sql.ErrNoRows) {
		return Endpoint{AccountID: accountID}, nil
	}
	return e, err
}

// NewEndpoint is what creates an endpoint; Secret is "" for an unsigned
// one, or a whsec_ secret.
type NewEndpoint struct {
	URL      string
	Headers  map[string]string
	Format   string
	Events   []string
	ByTenant bool
	Secret   string
}

// CreateEndpoint adds an endpoint to a number.
func (d *Dispatcher) CreateEndpoint(ctx context.Context, accountID int64, n NewEndpoint) (Endpoint, error) {
	sealed, err := d.sealSecret(n.Secret)
	if err != nil {
		return Endpoint{}, err
	}
	headers, _ := json.Marshal(n.Headers)
	events, _ := json.Marshal(n.Events)
	now := db.NowMillis()
	var id int64
	err = db.Tx(ctx, d.db, func(tx *sql.Tx) error {
		var count int
		if err := tx.QueryRowContext(ctx, "SELECT COUNT(*) FROM webhook_endpoints WHERE account_id = ? AND is_default = 0 FOR UPDATE", accountID).Scan(&count); err != nil {
			return err
		}
		if count >= MaxEndpoints {
			return fmt.Errorf("%w: a number has at most %d endpoints besides webhooks.url", ErrTooMany, MaxEndpoints)
		}
		res, err := tx.ExecContext(ctx, "INSERT INTO webhook_endpoints (account_id, is_default, url, headers, format, events, by_tenant, secret, created_at, updated_at) VALUES (?,0,?,?,?,?,?,?,?,?)",
			accountID, n.URL, headers, n.Format, events, n.ByTenant, sealed, now, now)
		if err != nil {
			return err
		}
		id, err = res.LastInsertId()
		return err
	})
	if err != nil {
		return Endpoint{}, err
	}
	return d.Endpoint(ctx, accountID, id)
}

// ErrTooMany refuses an endpoint past MaxEndpoints.
var ErrTooMany = errors.New("too many webhook endpoints")

// EndpointPatch changes some of an endpoint's fields (nil: unchanged).
type EndpointPatch struct {
	URL      *string
	Headers  *map[string]string
	Format   *string
	Events   *[]string
	ByTenant bool // who set URL, when it is set
}

// UpdateEndpoint changes an endpoint. The first endpoint takes only Events.
func (d *Dispatcher) UpdateEndpoint(ctx context.Context, accountID, id int64, p EndpointPatch) (Endpoint, error) {
	now := db.NowMillis()
	if id == DefaultEndpoint {
		if p.URL != nil || p.Headers != nil || p.Format != nil {
			return Endpoint{}, ErrDefaultEndpoint
		}
		if p.Events != nil {
			events, _ := json.Marshal(*p.Events)
			if err := d.upsertDefault(ctx, accountID, "events = ?", events); err != nil {
				return Endpoint{}, err
			}
		}
		return d.Endpoint(ctx, accountID, id)
	}
	var sets []string
	var args []any
	if p.URL != nil {
		sets, args = append(sets, "url = ?", "by_tenant = ?"), append(args, *p.URL, p.ByTenant)
	}
	if p.Headers != nil {
		b, _ := json.Marshal(*p.Headers)
		sets, args = append(sets, "headers = ?"), append(args, b)
	}
	if p.Format != nil {
		sets, args = append(sets, "format = ?"), append(args, *p.Format)
	}
	if p.Events != nil {
		b, _ := json.Marshal(*p.Events)
		sets, args = append(sets, "events = ?"), append(args, b)
	}
	sets, args = append(sets, "updated_at = ?"), append(args, now, accountID, id)
	res, err := d.db.ExecContext(ctx, "UPDATE webhook_endpoints SET "+strings.Join(sets, ", ")+" WHERE account_id = ? AND id = ? AND is_default = 0", args...)
	if err != nil {
		return Endpoint{}, err
	}
	if n, _ := res.RowsAffected(); n == 0 {
		if _, err := d.Endpoint(ctx, accountID, id); err != nil {
			return Endpoint{}, err
		}
	}
	if p.URL != nil {
		d.resetBackoff(accountID, id)
		d.releaseWaiting(ctx, accountID, id)
	}
	return d.Endpoint(ctx, accountID, id)
}

// upsertDefault sets one column of the first endpoint's row, creating it.
func (d *Dispatcher) upsertDefault(ctx context.Context, accountID int64, set string, args ...any) error {
	now := db.NowMillis()
	return db.Tx(ctx, d.db, func(tx *sql.Tx) error {
		var id int64
		err := tx.QueryRowContext(ctx, "SELECT id FROM webhook_endpoints WHERE account_id = ? AND is_default = 1 FOR UPDATE", accountID).Scan(&id)
		if errors.Is(err, sql.ErrNoRows) {
			res, err := tx.ExecContext(ctx, "INSERT INTO webhook_endpoints (account_id, is_default, url, headers, format, events, created_at, updated_at) VALUES (?,1,'','{}','','[]',?,?)", accountID, now, now)
			if err != nil {
				return err
			}
			if id, err = res.LastInsertId(); err != nil {
				return err
			}
		} else if err != nil {
			return err
		}
		_, err = tx.ExecContext(ctx, "UPDATE webhook_endpoints SET "+set+", updated_at = ? WHERE id = ?", append(args, now, id)...)
		return err
	})
}

// DeleteEndpoint removes an endpoint with its deliveries and their log.
func (d *Dispatcher) DeleteEndpoint(ctx context.Context, accountID, id int64) error {
	if id == DefaultEndpoint {
		return ErrDefaultEndpoint
	}
	return db.Tx(ctx, d.db, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, "DELETE FROM webhook_endpoints WHERE account_id = ? AND id = ? AND is_default = 0", accountID, id)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return ErrNoEndpoint
		}
		if _, err := tx.ExecContext(ctx, "DELETE FROM webhook_attempts WHERE delivery_id IN (SELECT id FROM webhook_deliveries WHERE account_id = ? AND endpoint_id = ?)", accountID, id); err != nil {
			return err
		}
		_, err = tx.ExecContext(ctx, "DELETE FROM webhook_deliveries WHERE account_id = ? AND endpoint_id = ?", accountID, id)
		return err
	})
}

// RotateSecret gives an endpoint a new signing secret (secret, or a fresh
// one when ""), and returns it. The secret it replaces stays valid for
// grace (signatures with both are sent); grace 0 ends it now.
func (d *Dispatcher) RotateSecret(ctx context.Context, accountID, id int64, secret string, grace time.Duration) (string, error) {
	if secret == "" {
		secret = webhooksign.NewSecret()
	}
	sealed, err := d.sealSecret(secret)
	if err != nil {
		return "", err
	}
	cur, err := d.Endpoint(ctx, accountID, id)
	if err != nil {
		return "", err
	}
	var prev []byte
	var until int64
	if grace > 0 && cur.Signed {
		prev, until = cur.secret, time.Now().Add(min(grace, MaxGrace)).UnixMilli()
	}
	if id == DefaultEndpoint {
		err = d.upsertDefault(ctx, accountID, "secret = ?, prev_secret = ?, prev_secret_until = ?", sealed, prev, until)
	} else {
		_, err = d.db.ExecContext(ctx, "UPDATE webhook_endpoints SET secret = ?, prev_secret = ?, prev_secret_until = ?, updated_at = ? WHERE account_id = ? AND id = ?",
			sealed, prev, until, db.NowMillis(), accountID, id)
	}
	if err != nil {
		return "", err
	}
	return secret, nil
}

// RemoveSecret stops signing an endpoint's POSTs.
func (d *Dispatcher) RemoveSecret(ctx context.Context, accountID, id int64) error {
	if _, err := d.Endpoint(ctx, accountID, id); err != nil {
		return err
	}
	_, err := d.db.ExecContext(ctx, "UPDATE webhook_endpoints SET secret = NULL, prev_secret = NULL, prev_secret_until = 0, updated_at = ? WHERE account_id = ? AND (id = ? OR (? AND is_default = 1))",
		db.NowMillis(), accountID, id, id == DefaultEndpoint)
	return err
}

func (d *Dispatcher) sealSecret(secret string) ([]byte, error) {
	if secret == "" {
		return nil, nil
	}
	if _, err := webhooksign.Key(secret); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadSecret, err)
	}
	if d.ks == nil {
		return nil, errors.New("no keystore to seal the signing secret")
	}
	return d.ks.Seal([]byte(secret), SecretContext), nil
}

// signingKeys opens an endpoint's valid signing keys, the current first.
func (d *Dispatcher) signingKeys(e Endpoint, now time.Time) ([][]byte, string, error) {
	if !e.Signed {
		return nil, "", nil
	}
	if d.ks == nil {
		return nil, "", errors.New("no keystore to open the signing secret")
	}
	var keys [][]byte
	var current string
	for i, sealed := range [][]byte{e.secret, e.prevSecret} {
		if len(sealed) == 0 || (i == 1 && !now.Before(e.PreviousUntil)) {
			continue
		}
		s, err := d.ks.Open(sealed, SecretContext)
		if err != nil {
			return nil, "", fmt.Errorf("opening the signing secret: %w", err)
		}
		k, err := webhooksign.Key(string(s))
		if err != nil {
			return nil, "", err
		}
		if i == 0 {
			current = string(s)
		}
		keys = append(keys, k)
	}
	return keys, current, nil
}
