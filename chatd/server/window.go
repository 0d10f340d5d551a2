package server

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/openwaba/openwaba/api/phone"
	"github.com/openwaba/openwaba/api/template"
	"github.com/openwaba/openwaba/db"
	chatdv1 "github.com/openwaba/openwaba/proto/gen/chatd/v1"
)

// The customer-service window and conversations, as WhatsApp runs them: a
// business may send free-form messages to a customer for 24 hours after
// the customer last wrote to its number; outside that window (and to a
// customer who never wrote) only an approved template goes through. Each
// message a business sends opens or joins a 24-hour conversation: a
// template one of its category (marketing, utility, authentication), a
// free-form one a "service" conversation unless one of any category is
// open (Meta's conversation-based pricing, June 2023 categories).
//
// chatd decides from metadata alone (it never sees content): the
// directions of the accounts, the stanza kind and, for kind "template",
// the template id. It decides in the queue writer's transaction, in the
// order messages commit, so the answer is the same for every batch split.

// conversationLength is how long the window and a conversation last.
const conversationLength = 24 * time.Hour

// Nack reasons of the window and of templates.
const (
	nackReengagement = "reengagement"     // free-form outside the window
	nackBlocked      = "blocked"          // the business blocked the customer (Block)
	nackTemplate     = "template_unknown" // no such template of the sender
	// "template_" + the lower-case status of a template that is not approved.
	nackTemplatePrefix = "template_"
)

// direction of a message between a business and a customer.
type direction int

const (
	dirOther        direction = iota // business to business, customer to customer
	dirToBusiness                    // a customer writes: the window opens
	dirFromBusiness                  // a business writes: the window and conversations apply
)

// clock is the network's clock: real time plus the sandbox's offset
// (POST /sandbox/clock moves it forward, for testing the window).
type clock struct {
	mu     sync.Mutex   // held while the offset is read from or written to the database
	offset atomic.Int64 // seconds
}

func (c *clock) now() time.Time {
	return time.Now().Add(time.Duration(c.offset.Load()) * time.Second)
}

// loadClock reads the stored offset.
func (s *Server) loadClock(ctx context.Context) error {
	s.clock.mu.Lock()
	defer s.clock.mu.Unlock()
	var off int64
	err := s.db.QueryRowContext(ctx, "SELECT offset_seconds FROM sandbox_clock WHERE id = 1").Scan(&off)
	if err != nil && err != sql.ErrNoRows {
		return err
	}
	s.clock.offset.Store(off)
	return nil
}

// advanceClock moves the clock forward by sec seconds, or back to real
// time when reset, and returns the new offset.
func (s *Server) advanceClock(ctx context.Context, sec int64, reset bool) (int64, error) {
	s.clock.mu.Lock()
	defer s.clock.mu.Unlock()
	off := s.clock.offset.Load() + sec
	if reset {
		off = 0
	}
	_, err := s.db.ExecContext(ctx, "INSERT INTO sandbox_clock (id, offset_seconds) VALUES (1, ?) ON DUPLICATE KEY UPDATE offset_seconds = VALUES(offset_seconds)", off)
	if err != nil {
		return 0, err
	}
	s.clock.offset.Store(off)
	return off, nil
}

type convPair struct{ business, customer string }

type conversation struct {
	id, category, origin string
	opened, expires      int64
}

type templateState struct {
	account, status, category string
}

// applyWindow decides the messages of a batch between businesses and
// customers: it records when customers wrote, drops what a blocked customer
// writes (it.dropped), refuses what the window, the template or a block
// does not allow (it.nack) and gives every accepted business
// message its conversation (it.conv), storing the windows and the
// conversations opened. Only items with fresh set are looked at.
func (s *Server) applyWindow(ctx context.Context, tx *sql.Tx, items []*storeItem, fresh func(*storeItem) bool) error {
	var out []*storeItem
	pairs := map[convPair]bool{}    // every pair of the batch: windows and blocks
	outPairs := map[convPair]bool{} // the business's messages: conversations
	tplIDs := map[string]bool{}
	for _, it := range items {
		if !fresh(it) {
			continue
		}
		switch it.dir {
		case dirToBusiness:
			pairs[convPair{it.recipient, it.sender}] = true
		case dirFromBusiness:
			out = append(out, it)
			pairs[convPair{it.sender, it.recipient}] = true
			outPairs[convPair{it.sender, it.recipient}] = true
			if it.stanzaKind == "template" && it.templateID != "" {
				tplIDs[it.templateID] = true
			}
		}
	}
	if len(pairs) == 0 {
		return nil
	}
	now := s.clock.now().Unix()
	windows := map[convPair]int64{}
	blocked := map[convPair]bool{}
	convs := map[convPair]map[string]conversation{}
	tpls := map[string]templateState{}
	var pairArgs []any
	for p := range pairs {
		pairArgs = append(pairArgs, p.business, p.customer)
	}
	if err := queryRows(ctx, tx, "SELECT business, customer, last_inbound, blocked FROM windows WHERE (business, customer) IN ("+db.Rows("(?,?)", len(pairs))+")", pairArgs,
		func(r *sql.Rows) error {
			var p convPair
			var t, b int64
			if err := r.Scan(&p.business, &p.customer, &t, &b); err != nil {
				return err
			}
			windows[p], blocked[p] = t, b != 0
			return nil
		}); err != nil {
		return err
	}
	if len(out) > 0 {
		var args []any
		for p := range outPairs {
			args = append(args, p.business, p.customer)
		}
		if err := queryRows(ctx, tx, "SELECT business, customer, category, id, origin, opened_at, expires_at FROM conversations WHERE (business, customer) IN ("+db.Rows("(?,?)", len(outPairs))+")", args,
			func(r *sql.Rows) error {
				var p convPair
				var c conversation
				if err := r.Scan(&p.business, &p.customer, &c.category, &c.id, &c.origin, &c.opened, &c.expires); err != nil {
					return err
				}
				if convs[p] == nil {
					convs[p] = map[string]conversation{}
				}
				convs[p][c.category] = c
				return nil
			}); err != nil {
			return err
		}
		if len(tplIDs) > 0 {
			var ids []any
			for id := range tplIDs {
				ids = append(ids, id)
			}
			if err := queryRows(ctx, tx, "SELECT id, account, status, category FROM templates WHERE id IN ("+db.Placeholders(len(ids))+")", ids,
				func(r *sql.Rows) error {
					var id string
					var t templateState
					if err := r.Scan(&id, &t.account, &t.status, &t.category); err != nil {
						return err
					}
					tpls[id] = t
					return nil
				}); err != nil {
				return err
			}
		}
	}

	wrote := map[convPair]bool{}
	opened := map[convPair]map[string]bool{}
	for _, it := range items {
		if !fresh(it) {
			continue
		}
		switch it.dir {
		case dirToBusiness:
			p := convPair{it.recipient, it.sender}
			if blocked[p] {
				it.dropped = true // acked, never delivered, no window
				continue
			}
			windows[p] = max(windows[p], now)
			wrote[p] = true
		case dirFromBusiness:
			p := convPair{it.sender, it.recipient}
			if blocked[p] {
				it.nack = nackBlocked
				continue
			}
			category, origin := "service", "user_initiated"
			if it.stanzaKind == "template" {
				t, ok := tpls[it.templateID]
				switch {
				case !ok || t.account != it.sender:
					it.nack = nackTemplate
					continue
				case t.status != template.StatusApproved:
					it.nack = nackTemplatePrefix + strings.ToLower(t.status)
					continue
				}
				category, origin = strings.ToLower(t.category), "business_initiated"
			} else if last, ok := windows[p]; s.cfg.EnforceWindow && (!ok || now-last >= int64(conversationLength/time.Second)) {
				it.nack = nackReengagement
				continue
			}
			c, isNew := joinConversation(convs[p], category, now)
			if isNew {
				c.id, c.origin = newConversationID(), origin
				if convs[p] == nil {
					convs[p] = map[string]conversation{}
				}
				convs[p][c.category] = c
				if opened[p] == nil {
					opened[p] = map[string]bool{}
				}
				opened[p][c.category] = true
			}
			it.conv = &chatdv1.Conversation{Id: c.id, Category: c.category, Origin: c.origin, Expires: c.expires, Opened: isNew}
		}
	}

	if len(wrote) > 0 {
		var args []any
		for p := range wrote {
			args = append(args, p.business, p.customer, windows[p])
		}
		if _, err := tx.ExecContext(ctx, "INSERT INTO windows (business, customer, last_inbound) VALUES "+db.Rows("(?,?,?)", len(wrote))+
			" ON DUPLICATE KEY UPDATE last_inbound = GREATEST(last_inbound, VALUES(last_inbound))", args...); err != nil {
			return err
		}
	}
	var args []any
	n := 0
	for p, cats := range opened {
		for cat := range cats {
			c := convs[p][cat]
			args = append(args, p.business, p.customer, c.category, c.id, c.origin, c.opened, c.expires)
			n++
		}
	}
	if n > 0 {
		if _, err := tx.ExecContext(ctx, "INSERT INTO conversations (business, customer, category, id, origin, opened_at, expires_at) VALUES "+db.Rows("(?,?,?,?,?,?,?)", n)+
			" ON DUPLICATE KEY UPDATE id = VALUES(id), origin = VALUES(origin), opened_at = VALUES(opened_at), expires_at = VALUES(expires_at)", args...); err != nil {
			return err
		}
	}
	return nil
}

// joinConversation returns the open conversation a message of category
// joins, or a new one (id and origin to set) when none is open: a template
// joins an open conversation of its own category; a free-form message
// joins any open conversation (the latest opened; of two opened in the same
// second, the first category in alphabetical order), else opens a service
// conversation.
func joinConversation(open map[string]conversation, category string, now int64) (conversation, bool) {
	if c, ok := open[category]; ok && c.expires > now {
		return c, false
	}
	if category == "service" {
		var best conversation
		found := false
		for _, c := range open {
			if c.expires > now && (!found || c.opened > best.opened || c.opened == best.opened && c.category < best.category) {
				best, found = c, true
			}
		}
		if found {
			return best, false
		}
	}
	return conversation{category: category, opened: now, expires: now + int64(conversationLength/time.Second)}, true
}

func newConversationID() string {
	b := make([]byte, 16)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// queryRows runs a query in tx and calls scan for every row.
func queryRows(ctx context.Context, tx *sql.Tx, q string, args []any, scan func(*sql.Rows) error) error {
	rows, err := tx.QueryContext(ctx, q, args...)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		if err := scan(rows); err != nil {
			return err
		}
	}
	return rows.Err()
}

// maxWindowQuery caps the numbers of one WindowQuery.
const maxWindowQuery = 1000

// windowQuery tells a business which of numbers it may send free-form
// messages to now: registered consumers whose window is open (any
// registered number when the window is not enforced, and businesses).
func (s *Server) windowQuery(ctx context.Context, c *conn, req *chatdv1.WindowQuery) (*chatdv1.IQ, *chatdv1.IQError) {
	if e := businessOnly(c); e != nil {
		return nil, e
	}
	if len(req.Numbers) > maxWindowQuery {
		return nil, &chatdv1.IQError{Code: 400, Text: fmt.Sprintf("at most %d numbers per query", maxWindowQuery)}
	}
	var valid []any
	for _, n := range req.Numbers {
		if phone.Valid(n) {
			valid = append(valid, n)
		}
	}
	kinds := map[string]chatdv1.AccountKind{}
	last := map[string]int64{}
	if len(valid) > 0 {
		err := db.Tx(ctx, s.db, func(tx *sql.Tx) error {
			clear(kinds)
			clear(last)
			if err := queryRows(ctx, tx, "SELECT number, kind FROM accounts WHERE number IN ("+db.Placeholders(len(valid))+")", valid, func(r *sql.Rows) error {
				var n string
				var k int32
				if err := r.Scan(&n, &k); err != nil {
					return err
				}
				kinds[n] = chatdv1.AccountKind(k)
				return nil
			}); err != nil {
				return err
			}
			return queryRows(ctx, tx, "SELECT customer, last_inbound FROM windows WHERE business = ? AND customer IN ("+db.Placeholders(len(valid))+")",
				append([]any{c.login.Account}, valid...), func(r *sql.Rows) error {
					var n string
					var t int64
					if err := r.Scan(&n, &t); err != nil {
						return err
					}
					last[n] = t
					return nil
				})
		})
		if err != nil {
			s.log.Error("window query failed", "err", err)
			return nil, iqInternal
		}
	}
	now := s.clock.now().Unix()
	res := &chatdv1.WindowStates{}
	for _, n := range req.Numbers {
		k, registered := kinds[n]
		t, wrote := last[n]
		open := registered && (!s.cfg.EnforceWindow || k == chatdv1.AccountKind_ACCOUNT_KIND_BUSINESS ||
			wrote && now-t < int64(conversationLength/time.Second))
		res.States = append(res.States, &chatdv1.WindowState{Number: n, Registered: registered, Open: open})
	}
	return &chatdv1.IQ{Payload: &chatdv1.IQ_WindowStates{WindowStates: res}}, nil
}
