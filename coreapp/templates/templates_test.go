package templates

import (
	"context"
	"encoding/json"
	"errors"
	"strconv"
	"sync"
	"testing"

	"github.com/openwaba/openwaba/api/errcode"
	"github.com/openwaba/openwaba/api/template"
	"github.com/openwaba/openwaba/chatd/session"
	chatdv1 "github.com/openwaba/openwaba/proto/gen/chatd/v1"
	messagev1 "github.com/openwaba/openwaba/proto/gen/message/v1"
)

// network answers template queries as chatd does, from a pack it holds,
// in pages of page records, and counts the queries.
type network struct {
	mu      sync.Mutex
	pack    []template.Template
	page    int
	queries int
	fail    error
}

func (n *network) iq(_ context.Context, iq *chatdv1.IQ) (*chatdv1.IQ, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.queries++
	if n.fail != nil {
		return nil, n.fail
	}
	q := iq.GetTemplateQuery()
	start := 0
	if q.After != "" {
		start, _ = strconv.Atoi(q.After)
	}
	recs := &chatdv1.TemplateRecords{Namespace: "ns_1"}
	for i := start; i < len(n.pack) && i < start+n.page; i++ {
		b, _ := json.Marshal(n.pack[i])
		recs.TemplateJson = append(recs.TemplateJson, b)
	}
	if start+n.page < len(n.pack) {
		recs.After = strconv.Itoa(start + n.page)
	}
	return &chatdv1.IQ{Payload: &chatdv1.IQ_TemplateRecords{TemplateRecords: recs}}, nil
}

func tpl(id, name, status string) template.Template {
	return template.Template{ID: id, Name: name, Language: "en", Status: status, Category: "UTILITY",
		Components: []template.Component{{Type: "BODY", Text: "Hi {{1}}"}}}
}

func msg(ns, name string) *messagev1.Template {
	return &messagev1.Template{Namespace: ns, Name: name, Language: "en", Policy: "deterministic",
		Body: []*messagev1.TemplateParameter{{Type: "text", Text: "Ann"}}}
}

func code(err error) errcode.Code {
	var ce *errcode.Error
	if errors.As(err, &ce) {
		return ce.Code
	}
	return 0
}

// TestPack: a pack is read over every page, hydrates a message (template id
// set, parameters dropped), refuses a foreign namespace, is kept until
// invalidated, and is fetched again before a lookup fails.
func TestPack(t *testing.T) {
	ctx := t.Context()
	net := &network{page: 2, pack: []template.Template{tpl("1", "a", "APPROVED"), tpl("2", "b", "APPROVED"), tpl("3", "c", "PENDING"), tpl("4", "d", "APPROVED"), tpl("5", "e", "APPROVED")}}
	c := NewCache()
	c.refetchAfter = 0

	m := msg("ns_1", "d")
	if err := c.Hydrate(ctx, 7, net.iq, m); err != nil {
		t.Fatalf("Hydrate d: %v", err)
	}
	if m.TemplateId != "4" || m.GetHydrated().GetBody() != "Hi Ann" || m.Body != nil {
		t.Errorf("hydrated %v, want template 4, body \"Hi Ann\", parameters dropped", m)
	}
	if net.queries != 3 {
		t.Errorf("the pack of 5 in pages of 2 took %d queries, want 3", net.queries)
	}
	if err := c.Hydrate(ctx, 7, net.iq, msg("ns_1", "a")); err != nil || net.queries != 3 {
		t.Errorf("a second message: %v after %d queries; want the cached pack", err, net.queries)
	}
	if err := c.Hydrate(ctx, 7, net.iq, msg("other_ns", "a")); code(err) != errcode.TemplateMissing {
		t.Errorf("a foreign namespace = %v, want %d", err, errcode.TemplateMissing)
	}

	// c is pending in the cached pack; approved meanwhile on the network:
	// the failed lookup fetches again and finds it.
	net.mu.Lock()
	net.pack[2].Status = "APPROVED"
	net.mu.Unlock()
	before := net.queries
	if err := c.Hydrate(ctx, 7, net.iq, msg("ns_1", "c")); err != nil {
		t.Errorf("c after its approval: %v", err)
	}
	if net.queries == before {
		t.Error("the failed lookup did not fetch the pack again")
	}
	// A pack that cannot be read is not the message's fault.
	c.Invalidate(7)
	net.fail = &session.IQError{Code: 500, Text: "internal error"}
	if err := c.Hydrate(ctx, 7, net.iq, msg("ns_1", "a")); err == nil || code(err) != 0 {
		t.Errorf("an unreadable pack = %v, want an error without an on-prem code", err)
	}
	net.fail = &session.IQError{Code: uint32(errcode.Exists), Text: "a template named x already exists"}
	if _, err := Create(ctx, net.iq, []byte(`{}`)); code(err) != errcode.Exists {
		t.Errorf("chatd's on-prem code = %v, want %d passed on", err, errcode.Exists)
	}
}
