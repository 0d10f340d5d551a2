// Package templates is coreapp's side of message templates: the template
// pack of each number (its templates and namespace, as the network keeps
// them), fetched over the number's chatd session and cached; the
// management requests (create, list, delete) passed on to the network; and
// the hydration of a template message from the pack before it is sealed.
//
// A pack is fetched when first needed and again when a TEMPLATE_STATUS
// notice arrives (Invalidate), when chatd refuses a template the pack
// called approved, or after MaxAge. A lookup that fails against a pack
// older than refetchAfter fetches once more before it fails the message,
// so a template approved a moment ago (its notice delivered to another
// node) is found.
package templates

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/openwaba/openwaba/api/errcode"
	"github.com/openwaba/openwaba/api/template"
	"github.com/openwaba/openwaba/chatd/session"
	chatdv1 "github.com/openwaba/openwaba/proto/gen/chatd/v1"
	messagev1 "github.com/openwaba/openwaba/proto/gen/message/v1"
)

// IQ sends a request to chatd on one of the number's sessions.
type IQ func(context.Context, *chatdv1.IQ) (*chatdv1.IQ, error)

// Cache timings.
const (
	// MaxAge is how long a pack is used before it is fetched again.
	MaxAge = time.Minute
	// refetchAfter: a lookup that fails against a pack at least this old
	// fetches it once more first.
	refetchAfter = time.Second
	// IQTimeout bounds one request to chatd (templates, blocks).
	IQTimeout = 15 * time.Second
)

// Pack is a number's templates and namespace.
type Pack struct {
	Namespace string
	Templates []template.Template
	fetched   time.Time
}

// Cache holds the packs of the numbers this node serves. It is safe for
// concurrent use.
type Cache struct {
	refetchAfter time.Duration

	mu    sync.Mutex
	packs map[int64]*Pack  // account id → pack
	gen   map[int64]uint64 // invalidations per account: a fetch that raced one is not kept
}

// NewCache returns an empty cache.
func NewCache() *Cache {
	return &Cache{refetchAfter: refetchAfter, packs: map[int64]*Pack{}, gen: map[int64]uint64{}}
}

// Invalidate drops the account's pack: the next use fetches it.
func (c *Cache) Invalidate(accountID int64) {
	c.mu.Lock()
	delete(c.packs, accountID)
	c.gen[accountID]++
	c.mu.Unlock()
}

// Get returns the account's pack, fetching it (in the caller's context)
// when it is missing or older than maxAge.
func (c *Cache) Get(ctx context.Context, accountID int64, iq IQ, maxAge time.Duration) (*Pack, error) {
	c.mu.Lock()
	p, gen := c.packs[accountID], c.gen[accountID]
	c.mu.Unlock()
	if p != nil && time.Since(p.fetched) < maxAge {
		return p, nil
	}
	p, err := Fetch(ctx, iq)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	if c.gen[accountID] == gen {
		c.packs[accountID] = p
	}
	c.mu.Unlock()
	return p, nil
}

// Fetch reads a number's whole pack from chatd.
func Fetch(ctx context.Context, iq IQ) (*Pack, error) {
	p := &Pack{fetched: time.Now()}
	after := ""
	for range MaxPages {
		recs, err := List(ctx, iq, &chatdv1.TemplateQuery{After: after})
		if err != nil {
			return nil, err
		}
		p.Namespace = recs.Namespace
		p.Templates = append(p.Templates, recs.Templates...)
		if recs.After == "" {
			return p, nil
		}
		after = recs.After
	}
	return nil, errors.New("template pack: too many pages")
}

// MaxPages bounds the pages of one pack fetch (chatd's pages hold 1,000
// templates; a number has at most 6,000).
const MaxPages = 10

// Records is one page of templates.
type Records struct {
	Templates []template.Template
	Namespace string
	After     string
	Total     int
}

func ask(ctx context.Context, iq IQ, req *chatdv1.IQ) (*chatdv1.TemplateRecords, error) {
	ctx, cancel := context.WithTimeout(ctx, IQTimeout)
	defer cancel()
	res, err := iq(ctx, req)
	if err != nil {
		return nil, session.OnPrem(err) // chatd answers with on-prem codes
	}
	recs := res.GetTemplateRecords()
	if recs == nil {
		return nil, fmt.Errorf("chatd answered a template request with %T", res.Payload)
	}
	return recs, nil
}

func decode(recs *chatdv1.TemplateRecords) (*Records, error) {
	out := &Records{Namespace: recs.Namespace, After: recs.After, Total: int(recs.Total)}
	for _, b := range recs.TemplateJson {
		var t template.Template
		if err := json.Unmarshal(b, &t); err != nil {
			return nil, fmt.Errorf("template record from chatd: %w", err)
		}
		out.Templates = append(out.Templates, t)
	}
	return out, nil
}

// List reads one page of a number's templates.
func List(ctx context.Context, iq IQ, q *chatdv1.TemplateQuery) (*Records, error) {
	recs, err := ask(ctx, iq, &chatdv1.IQ{Type: chatdv1.IQType_IQ_TYPE_GET, Payload: &chatdv1.IQ_TemplateQuery{TemplateQuery: q}})
	if err != nil {
		return nil, err
	}
	return decode(recs)
}

// Create submits a template (the Graph message_templates JSON); the
// network checks it and answers its record.
func Create(ctx context.Context, iq IQ, js []byte) (template.Template, error) {
	recs, err := ask(ctx, iq, &chatdv1.IQ{Type: chatdv1.IQType_IQ_TYPE_SET,
		Payload: &chatdv1.IQ_TemplateCreate{TemplateCreate: &chatdv1.TemplateCreate{TemplateJson: js}}})
	if err != nil {
		return template.Template{}, err
	}
	out, err := decode(recs)
	if err != nil {
		return template.Template{}, err
	}
	if len(out.Templates) != 1 {
		return template.Template{}, fmt.Errorf("chatd answered a template create with %d records", len(out.Templates))
	}
	return out.Templates[0], nil
}

// Edit changes template id (an edit body: components and/or category);
// the network sends it for review again and answers the new record.
func Edit(ctx context.Context, iq IQ, id string, js []byte) (template.Template, error) {
	recs, err := ask(ctx, iq, &chatdv1.IQ{Type: chatdv1.IQType_IQ_TYPE_SET,
		Payload: &chatdv1.IQ_TemplateEdit{TemplateEdit: &chatdv1.TemplateEdit{Id: id, TemplateJson: js}}})
	if err != nil {
		return template.Template{}, err
	}
	out, err := decode(recs)
	if err != nil {
		return template.Template{}, err
	}
	if len(out.Templates) != 1 {
		return template.Template{}, fmt.Errorf("chatd answered a template edit with %d records", len(out.Templates))
	}
	return out.Templates[0], nil
}

// Delete deletes a number's templates called name (in language, or in
// all) and returns them.
func Delete(ctx context.Context, iq IQ, name, language string) ([]template.Template, error) {
	recs, err := ask(ctx, iq, &chatdv1.IQ{Type: chatdv1.IQType_IQ_TYPE_SET,
		Payload: &chatdv1.IQ_TemplateDelete{TemplateDelete: &chatdv1.TemplateDelete{Name: name, Language: language}}})
	if err != nil {
		return nil, err
	}
	out, err := decode(recs)
	if err != nil {
		return nil, err
	}
	return out.Templates, nil
}

// Hydrate fills in a template message from the account's pack: the
// template it names (in its namespace, name and language, approved), its
// parameters checked and filled in (t.Hydrated, t.TemplateId; the
// parameters are dropped). An *errcode.Error is the message's fault (it
// fails with that code); another error means the pack could not be read.
func (c *Cache) Hydrate(ctx context.Context, accountID int64, iq IQ, t *messagev1.Template) error {
	p, err := c.Get(ctx, accountID, iq, MaxAge)
	if err != nil {
		return err
	}
	err = p.hydrate(t)
	var ce *errcode.Error
	if errors.As(err, &ce) && time.Since(p.fetched) >= c.refetchAfter {
		// The pack may be behind (a notice that went to another node):
		// look again in a fresh one.
		if p, err = c.Get(ctx, accountID, iq, c.refetchAfter); err != nil {
			return err
		}
		err = p.hydrate(t)
	}
	return err
}

func (p *Pack) hydrate(t *messagev1.Template) error {
	if t.Namespace != "" && t.Namespace != p.Namespace {
		return errcode.New(errcode.TemplateMissing, "namespace %s is not this number's template namespace (GET /v1/configs/templates shows it)", t.Namespace)
	}
	tpl, err := template.Find(p.Templates, t.Name, t.Language)
	if err != nil {
		return err
	}
	h, err := template.Hydrate(tpl, t)
	if err != nil {
		return err
	}
	t.TemplateId, t.Hydrated = tpl.ID, h
	t.Header, t.Body, t.Buttons = nil, nil, nil
	return nil
}
