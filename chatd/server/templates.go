package server

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/openwaba/openwaba/api/errcode"
	"github.com/openwaba/openwaba/api/template"
	"github.com/openwaba/openwaba/db"
	chatdv1 "github.com/openwaba/openwaba/proto/gen/chatd/v1"
)

// Templates belong to the network side, as on WhatsApp: a business account
// submits them (TemplateCreate), the network reviews them (the sandbox
// approves after Config.TemplateApprovalDelay, and its admin API sets any
// status), and every change reaches the business as a TEMPLATE_STATUS
// notification, queued in the same transaction as the change. Business
// clients fetch their pack with TemplateQuery. Template IQs answer errors
// with on-prem codes (1004 exists, 1006 not found, 1008/1009/1010 a bad
// submission) so that coreapp passes them on unchanged.

// MaxTemplates is how many templates (names × languages) one account may
// have: Meta's limit for a verified business (6,000; 250 before
// verification, developers.facebook.com/docs/whatsapp/business-management-api/message-templates).
const MaxTemplates = 6000

// maxTemplatePage is the largest page of a TemplateQuery.
const maxTemplatePage = 1000

// approvalInterval is how often due approvals are looked for.
const approvalInterval = 250 * time.Millisecond

// templateRow is a stored template.
type templateRow struct {
	id                               int64
	account, name, language          string
	category, status, reason, record string
	createdAt, updatedAt             int64
}

const templateColumns = "id, account, name, language, category, status, reason, record, created_at, updated_at"

func scanTemplate(r interface{ Scan(...any) error }) (templateRow, error) {
	var t templateRow
	err := r.Scan(&t.id, &t.account, &t.name, &t.language, &t.category, &t.status, &t.reason, &t.record, &t.createdAt, &t.updatedAt)
	return t, err
}

// json renders the row as a Graph message_templates record.
func (t templateRow) json() ([]byte, error) {
	var rec template.Template
	if err := json.Unmarshal([]byte(t.record), &rec); err != nil {
		return nil, fmt.Errorf("template %d: %w", t.id, err)
	}
	rec.ID, rec.Status, rec.RejectedReason = strconv.FormatInt(t.id, 10), t.status, "NONE"
	if t.status == template.StatusRejected && t.reason != "" {
		rec.RejectedReason = t.reason
	}
	return json.Marshal(rec)
}

func iqErr(code errcode.Code, format string, args ...any) *chatdv1.IQError {
	return &chatdv1.IQError{Code: uint32(code), Text: fmt.Sprintf(format, args...)}
}

var iqInternal = &chatdv1.IQError{Code: 500, Text: "internal error"}

// businessOnly refuses template requests of consumer accounts.
func businessOnly(c *conn) *chatdv1.IQError {
	if c.registerOnly || c.account == nil || c.account.kind != chatdv1.AccountKind_ACCOUNT_KIND_BUSINESS {
		return iqErr(errcode.AccessDenied, "templates belong to business accounts")
	}
	return nil
}

// templateCreate stores a submission as PENDING and schedules its review.
func (s *Server) templateCreate(ctx context.Context, c *conn, req *chatdv1.TemplateCreate) (*chatdv1.IQ, *chatdv1.IQError) {
	if e := businessOnly(c); e != nil {
		return nil, e
	}
	if len(req.TemplateJson) > template.MaxJSON {
		return nil, iqErr(errcode.TooLong, "a template is at most %d bytes of JSON", template.MaxJSON)
	}
	t, err := template.Parse(req.TemplateJson)
	if err != nil {
		var ce *errcode.Error
		if errors.As(err, &ce) {
			return nil, iqErr(ce.Code, "%s", ce.Details)
		}
		return nil, iqErr(errcode.Invalid, "%v", err)
	}
	record, err := json.Marshal(template.Template{Name: t.Name, Language: t.Language, Category: t.Category, Components: t.Components})
	if err != nil {
		return nil, iqInternal
	}
	account := c.login.Account
	now := time.Now()
	var row templateRow
	var exists, full bool
	err = db.Tx(ctx, s.db, func(tx *sql.Tx) error {
		exists, full = false, false
		// The account row serializes the creations of one account (the
		// limit is checked and kept).
		var n int
		if err := tx.QueryRowContext(ctx, "SELECT 1 FROM accounts WHERE number = ? FOR UPDATE", account).Scan(&n); err != nil {
			return err
		}
		if err := tx.QueryRowContext(ctx, "SELECT COUNT(*) FROM templates WHERE account = ?", account).Scan(&n); err != nil {
			return err
		}
		if n >= MaxTemplates {
			full = true
			return nil
		}
		res, err := tx.ExecContext(ctx, "INSERT INTO templates (account, name, language, category, status, reason, record, approve_at, created_at, updated_at) VALUES (?, ?, ?, ?, ?, '', ?, ?, ?, ?)",
			account, t.Name, t.Language, t.Category, template.StatusPending, string(record), now.Add(s.cfg.TemplateApprovalDelay).UnixMilli(), now.UnixMilli(), now.UnixMilli())
		if db.IsDuplicate(err) {
			exists = true
			return nil
		}
		if err != nil {
			return err
		}
		id, err := res.LastInsertId()
		if err != nil {
			return err
		}
		row = templateRow{id: id, account: account, name: t.Name, language: t.Language, category: t.Category, status: template.StatusPending, record: string(record)}
		return nil
	})
	switch {
	case err != nil:
		s.log.Error("template create failed", "err", err)
		return nil, iqInternal
	case exists:
		return nil, iqErr(errcode.Exists, "a template named %s already exists in language %s", t.Name, t.Language)
	case full:
		return nil, iqErr(errcode.Invalid, "the number has the maximum of %d templates; delete some first", MaxTemplates)
	}
	s.log.Info("template submitted", "account", account, "template_id", row.id, "name", t.Name, "language", t.Language, "category", t.Category)
	s.wakeApprover()
	b, err := row.json()
	if err != nil {
		return nil, iqInternal
	}
	return &chatdv1.IQ{Payload: &chatdv1.IQ_TemplateRecords{TemplateRecords: &chatdv1.TemplateRecords{TemplateJson: [][]byte{b}}}}, nil
}

// namespace returns the account's template namespace, making it on first
// use (a UUID written with underscores, as WhatsApp's are).
func (s *Server) namespace(ctx context.Context, account string) (string, error) {
	var ns string
	if err := s.db.QueryRowContext(ctx, "SELECT template_namespace FROM accounts WHERE number = ?", account).Scan(&ns); err != nil {
		return "", err
	}
	if ns != "" {
		return ns, nil
	}
	b := make([]byte, 16)
	rand.Read(b)
	h := hex.EncodeToString(b)
	ns = strings.Join([]string{h[:8], h[8:12], h[12:16], h[16:20], h[20:]}, "_")
	if _, err := s.db.ExecContext(ctx, "UPDATE accounts SET template_namespace = ? WHERE number = ? AND template_namespace = ''", ns, account); err != nil {
		return "", err
	}
	// Another request may have made one first: the stored one wins.
	err := s.db.QueryRowContext(ctx, "SELECT template_namespace FROM accounts WHERE number = ?", account).Scan(&ns)
	return ns, err
}

// templateQuery lists the account's templates (filtered, one page) with
// its namespace.
func (s *Server) templateQuery(ctx context.Context, c *conn, req *chatdv1.TemplateQuery) (*chatdv1.IQ, *chatdv1.IQError) {
	if e := businessOnly(c); e != nil {
		return nil, e
	}
	account := c.login.Account
	where := []string{"account = ?"}
	args := []any{account}
	add := func(col, v string) {
		if v != "" {
			where = append(where, col+" = ?")
			args = append(args, v)
		}
	}
	add("name", req.Name)
	add("status", strings.ToUpper(req.Status))
	add("category", strings.ToUpper(req.Category))
	add("language", req.Language)
	if req.Id != "" {
		id, err := strconv.ParseInt(req.Id, 10, 64)
		if err != nil {
			return nil, iqErr(errcode.NotFound, "unknown template id %q", req.Id)
		}
		where = append(where, "id = ?")
		args = append(args, id)
	}
	cond := strings.Join(where, " AND ")
	var total uint32
	if err := s.db.QueryRowContext(ctx, "SELECT COUNT(*) FROM templates WHERE "+cond, args...).Scan(&total); err != nil {
		s.log.Error("template query failed", "err", err)
		return nil, iqInternal
	}
	limit := int(req.Limit)
	if limit <= 0 || limit > maxTemplatePage {
		limit = maxTemplatePage
	}
	page := cond
	pageArgs := args
	if req.After != "" {
		after, err := strconv.ParseInt(req.After, 10, 64)
		if err != nil {
			return nil, iqErr(errcode.Invalid, "after must be a cursor of an earlier page")
		}
		page += " AND id > ?"
		pageArgs = append(pageArgs, after)
	}
	rows, err := s.db.QueryContext(ctx, "SELECT "+templateColumns+" FROM templates WHERE "+page+" ORDER BY id LIMIT ? OFFSET ?",
		append(pageArgs, limit+1, req.Offset)...)
	if err != nil {
		s.log.Error("template query failed", "err", err)
		return nil, iqInternal
	}
	defer rows.Close()
	res := &chatdv1.TemplateRecords{Total: total}
	var last int64
	for rows.Next() {
		t, err := scanTemplate(rows)
		if err != nil {
			return nil, iqInternal
		}
		if len(res.TemplateJson) == limit {
			res.After = strconv.FormatInt(last, 10)
			break
		}
		b, err := t.json()
		if err != nil {
			s.log.Error("stored template unreadable", "err", err)
			return nil, iqInternal
		}
		res.TemplateJson = append(res.TemplateJson, b)
		last = t.id
	}
	if err := rows.Err(); err != nil {
		return nil, iqInternal
	}
	if res.Namespace, err = s.namespace(ctx, account); err != nil {
		s.log.Error("template namespace failed", "err", err)
		return nil, iqInternal
	}
	return &chatdv1.IQ{Payload: &chatdv1.IQ_TemplateRecords{TemplateRecords: res}}, nil
}

// templateDelete deletes the account's templates called name (in one
// language, or in all); the result lists them.
func (s *Server) templateDelete(ctx context.Context, c *conn, req *chatdv1.TemplateDelete) (*chatdv1.IQ, *chatdv1.IQError) {
	if e := businessOnly(c); e != nil {
		return nil, e
	}
	if req.Name == "" {
		return nil, iqErr(errcode.Missing, "name is required")
	}
	where, args := "account = ? AND name = ?", []any{c.login.Account, req.Name}
	if req.Language != "" {
		where += " AND language = ?"
		args = append(args, req.Language)
	}
	res := &chatdv1.TemplateRecords{}
	err := db.Tx(ctx, s.db, func(tx *sql.Tx) error {
		res.TemplateJson = nil
		rows, err := tx.QueryContext(ctx, "SELECT "+templateColumns+" FROM templates WHERE "+where+" ORDER BY id FOR UPDATE", args...)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			t, err := scanTemplate(rows)
			if err != nil {
				return err
			}
			b, err := t.json()
			if err != nil {
				return err
			}
			res.TemplateJson = append(res.TemplateJson, b)
		}
		if err := rows.Err(); err != nil {
			return err
		}
		rows.Close()
		_, err = tx.ExecContext(ctx, "DELETE FROM templates WHERE "+where, args...)
		return err
	})
	if err != nil {
		s.log.Error("template delete failed", "err", err)
		return nil, iqInternal
	}
	if len(res.TemplateJson) == 0 {
		if req.Language != "" {
			return nil, iqErr(errcode.NotFound, "no template named %s in language %s", req.Name, req.Language)
		}
		return nil, iqErr(errcode.NotFound, "no template named %s", req.Name)
	}
	s.log.Info("templates deleted", "account", c.login.Account, "name", req.Name, "language", req.Language, "count", len(res.TemplateJson))
	return &chatdv1.IQ{Payload: &chatdv1.IQ_TemplateRecords{TemplateRecords: res}}, nil
}

// errNoTemplate: no template has the id.
var errNoTemplate = errors.New("no such template")

// setTemplateStatus changes a template's status and queues the
// TEMPLATE_STATUS notification for its account in the same transaction.
// onlyPending makes it a scheduled approval, which a change made meanwhile
// cancels. changed is false when the template already had the status.
func (s *Server) setTemplateStatus(ctx context.Context, id int64, status, reason string, onlyPending bool) (row templateRow, changed bool, err error) {
	row, err = scanTemplate(s.db.QueryRowContext(ctx, "SELECT "+templateColumns+" FROM templates WHERE id = ?", id))
	if errors.Is(err, sql.ErrNoRows) {
		return row, false, errNoTemplate
	}
	if err != nil {
		return row, false, err
	}
	now := time.Now()
	n := &chatdv1.Notification{Id: s.newID(), Type: chatdv1.NotificationType_NOTIFICATION_TYPE_TEMPLATE_STATUS, T: now.Unix(),
		Template: &chatdv1.TemplateStatus{Id: strconv.FormatInt(id, 10), Name: row.name, Language: row.language, Event: status, Reason: reason, Category: row.category}}
	payload, err := proto.Marshal(&chatdv1.Stanza{Body: &chatdv1.Stanza_Notification{Notification: n}})
	if err != nil {
		return row, false, err
	}
	it := &storeItem{kind: kindNotification, id: n.Id, t: n.T, recipient: row.account, payload: payload,
		precond: func(ctx context.Context, tx *sql.Tx) (bool, error) {
			q := "UPDATE templates SET status = ?, reason = ?, approve_at = 0, updated_at = ? WHERE id = ? AND status <> ?"
			args := []any{status, reason, now.UnixMilli(), id, status}
			if onlyPending {
				q += " AND status = ? AND approve_at > 0"
				args = append(args, template.StatusPending)
			}
			res, err := tx.ExecContext(ctx, q, args...)
			if err != nil {
				return false, err
			}
			n, err := res.RowsAffected()
			return n == 1, err
		}}
	done := make(chan error, 1)
	s.queue.Go(it, func(err error) { done <- err })
	select {
	case err = <-done:
	case <-ctx.Done():
		return row, false, ctx.Err()
	}
	if err != nil {
		return row, false, err
	}
	if it.skipped {
		return row, false, nil
	}
	row.status, row.reason = status, reason
	s.log.Info("template status changed", "account", row.account, "template_id", id, "name", row.name, "language", row.language, "status", status, "reason", reason)
	s.deliver(row.account, 0, it.seq, payload)
	return row, true, nil
}

func (s *Server) wakeApprover() {
	select {
	case s.approve <- struct{}{}:
	default:
	}
}

// approver approves pending templates whose review delay has passed (and
// keeps the sandbox clock in step with the database).
func (s *Server) approver(ctx context.Context) {
	t := time.NewTicker(approvalInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-s.approve:
		}
		if err := s.loadClock(ctx); err != nil && ctx.Err() == nil {
			s.log.Warn("reading the sandbox clock failed", "err", err)
		}
		rows, err := s.db.QueryContext(ctx, "SELECT id FROM templates WHERE approve_at > 0 AND approve_at <= ? ORDER BY approve_at LIMIT 100", time.Now().UnixMilli())
		if err != nil {
			if ctx.Err() == nil {
				s.log.Error("looking for templates to approve failed", "err", err)
			}
			continue
		}
		var ids []int64
		for rows.Next() {
			var id int64
			if rows.Scan(&id) == nil {
				ids = append(ids, id)
			}
		}
		rows.Close()
		for _, id := range ids {
			if _, _, err := s.setTemplateStatus(ctx, id, template.StatusApproved, "NONE", true); err != nil && ctx.Err() == nil {
				s.log.Error("approving a template failed", "template_id", id, "err", err)
			}
		}
	}
}

// editable are the statuses of a template that may be edited (Meta:
// approved, rejected or paused templates).
var editable = []string{template.StatusApproved, template.StatusRejected, template.StatusPaused}

// templateEdit replaces a template's components and/or category and sends
// it for review again: PENDING, approved after the review delay. Meta's
// limits on how often an approved template may be edited (once a day, ten
// times a month) are not applied by the sandbox.
func (s *Server) templateEdit(ctx context.Context, c *conn, req *chatdv1.TemplateEdit) (*chatdv1.IQ, *chatdv1.IQError) {
	if e := businessOnly(c); e != nil {
		return nil, e
	}
	id, err := strconv.ParseInt(req.Id, 10, 64)
	if err != nil {
		return nil, iqErr(errcode.NotFound, "no template %s", req.Id)
	}
	if len(req.TemplateJson) > template.MaxJSON {
		return nil, iqErr(errcode.TooLong, "a template is at most %d bytes of JSON", template.MaxJSON)
	}
	var edit struct {
		Components json.RawMessage `json:"components"`
		Category   *string         `json:"category"`
	}
	dec := json.NewDecoder(strings.NewReader(string(req.TemplateJson)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&edit); err != nil {
		return nil, iqErr(errcode.Invalid, "an edit has components and/or category: %v", err)
	}
	if edit.Components == nil && edit.Category == nil {
		return nil, iqErr(errcode.Missing, "an edit needs components or category")
	}
	var row templateRow
	var refusal *chatdv1.IQError
	now := time.Now()
	err = db.Tx(ctx, s.db, func(tx *sql.Tx) error {
		refusal = nil
		var err error
		row, err = scanTemplate(tx.QueryRowContext(ctx, "SELECT "+templateColumns+" FROM templates WHERE id = ? AND account = ? FOR UPDATE", id, c.login.Account))
		if errors.Is(err, sql.ErrNoRows) {
			refusal = iqErr(errcode.NotFound, "no template %s", req.Id)
			return nil
		}
		if err != nil {
			return err
		}
		if !slices.Contains(editable, row.status) {
			refusal = iqErr(errcode.Invalid, "a template in status %s cannot be edited (only %s)", row.status, strings.Join(editable, ", "))
			return nil
		}
		var rec map[string]json.RawMessage
		if err := json.Unmarshal([]byte(row.record), &rec); err != nil {
			return err
		}
		if edit.Components != nil {
			rec["components"] = edit.Components
		}
		if edit.Category != nil {
			b, _ := json.Marshal(*edit.Category)
			rec["category"] = b
		}
		merged, err := json.Marshal(rec)
		if err != nil {
			return err
		}
		t, err := template.Parse(merged)
		if err != nil {
			var ce *errcode.Error
			if errors.As(err, &ce) {
				refusal = iqErr(ce.Code, "%s", ce.Details)
				return nil
			}
			return err
		}
		record, err := json.Marshal(template.Template{Name: t.Name, Language: t.Language, Category: t.Category, Components: t.Components})
		if err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, "UPDATE templates SET category = ?, status = ?, reason = '', record = ?, approve_at = ?, updated_at = ? WHERE id = ?",
			t.Category, template.StatusPending, string(record), now.Add(s.cfg.TemplateApprovalDelay).UnixMilli(), now.UnixMilli(), id); err != nil {
			return err
		}
		row.category, row.status, row.reason, row.record = t.Category, template.StatusPending, "", string(record)
		return nil
	})
	switch {
	case err != nil:
		s.log.Error("template edit failed", "err", err)
		return nil, iqInternal
	case refusal != nil:
		return nil, refusal
	}
	s.log.Info("template edited", "account", c.login.Account, "template_id", id, "name", row.name, "language", row.language)
	s.wakeApprover()
	b, err := row.json()
	if err != nil {
		return nil, iqInternal
	}
	return &chatdv1.IQ{Payload: &chatdv1.IQ_TemplateRecords{TemplateRecords: &chatdv1.TemplateRecords{TemplateJson: [][]byte{b}}}}, nil
}
