// Package receive is the inbound side of coreapp: a message pushed by chatd is
// opened, and the message, its sender as a contact and the inbound webhook
// event are committed in one transaction before the caller acks chatd; a
// redelivered message (same sender and id) changes nothing. It also records
// the read receipts the business asks for (PUT /v1/messages/{id}).
package receive

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"

	"google.golang.org/protobuf/proto"

	"github.com/openwaba/openwaba/api/errcode"
	"github.com/openwaba/openwaba/api/message"
	"github.com/openwaba/openwaba/chatd/shard"
	"github.com/openwaba/openwaba/coreapp/e2e"
	"github.com/openwaba/openwaba/coreapp/medialib"
	"github.com/openwaba/openwaba/coreapp/settings"
	"github.com/openwaba/openwaba/coreapp/webhook"
	"github.com/openwaba/openwaba/db"
	"github.com/openwaba/openwaba/media"
	chatdv1 "github.com/openwaba/openwaba/proto/gen/chatd/v1"
	messagev1 "github.com/openwaba/openwaba/proto/gen/message/v1"
)

// Store records inbound messages. Run must be running.
type Store struct {
	db          *sql.DB
	sealer      e2e.Sealer
	settings    *settings.Store
	media       *medialib.Store
	log         *slog.Logger
	batch       *db.Batcher[*inbound]
	webhookWake func()
}

// NewStore returns a Store.
func NewStore(d *sql.DB, sealer e2e.Sealer, st *settings.Store, media *medialib.Store, log *slog.Logger, webhookWake func()) *Store {
	s := &Store{db: d, sealer: sealer, settings: st, media: media, log: log, webhookWake: webhookWake}
	s.batch = db.NewBatcher(d, log, db.BatchOptions{Workers: 2, Name: "inbound"}, s.flush)
	return s
}

// Run writes until ctx ends.
func (s *Store) Run(ctx context.Context) error { return s.batch.Run(ctx) }

// Outcome says what became of a pushed message.
type Outcome int

// Outcomes of Message.
const (
	// Stored: committed with its webhook event (or stored before: a
	// redelivery); the message can be acked.
	Stored Outcome = iota
	// Undecryptable: nothing stored; ask the sender to encrypt it again
	// (a retry receipt), then ack.
	Undecryptable
)

type inbound struct {
	accountID    int64
	shard        uint32
	m            *chatdv1.Message
	forceUnknown bool // store it as an unknown message without decrypting

	// Results.
	isNew    bool
	outcome  Outcome
	download bool // a media file to download was recorded
}

// Message stores m for the account and calls done after the commit. A
// duplicate is committed as a no-op. With forceUnknown the message is stored
// as an unsupported ("unknown") message without being decrypted (after the
// sender's retries were exhausted).
func (s *Store) Message(accountID int64, shard uint32, m *chatdv1.Message, forceUnknown bool, done func(Outcome, error)) {
	it := &inbound{accountID: accountID, shard: shard, m: m, forceUnknown: forceUnknown}
	s.batch.Go(it, func(err error) {
		if err == nil && it.isNew {
			s.webhookWake()
		}
		if err == nil && it.download {
			s.media.Kick()
		}
		done(it.outcome, err)
	})
}

// flush stores a batch of pushed messages: one query finds those already
// stored (redeliveries); the new ones are decrypted against their sessions
// (preloaded in two queries) and stored with their contacts, the webhook
// events and the advanced sessions in a few multi-row statements.
func (s *Store) flush(ctx context.Context, tx *sql.Tx, items []*inbound) error {
	type key struct {
		acct     int64
		peer, id string
	}
	byAccount := map[int64][]any{}
	peers := map[int64][]string{}
	for _, it := range items {
		it.isNew, it.outcome, it.download = false, Stored, false
		byAccount[it.accountID] = append(byAccount[it.accountID], it.m.Id)
		peers[it.accountID] = append(peers[it.accountID], it.m.From)
	}
	known := map[key]bool{}
	txns := map[int64]e2e.Txn{}
	for acct, ids := range byAccount {
		// Lock the peers' sessions first: a concurrent batch holding one of
		// them commits before this one reads what is already stored.
		t, err := s.sealer.Begin(ctx, tx, acct)
		if err != nil {
			return err
		}
		if err := t.Preload(ctx, peers[acct]); err != nil {
			return err
		}
		txns[acct] = t
		q, err := tx.QueryContext(ctx, "SELECT peer, id FROM inbound_messages WHERE account_id = ? AND id IN ("+db.Placeholders(len(ids))+")",
			append([]any{acct}, ids...)...)
		if err != nil {
			return err
		}
		for q.Next() {
			k := key{acct: acct}
			if err := q.Scan(&k.peer, &k.id); err != nil {
				q.Close()
				return err
			}
			known[k] = true
		}
		q.Close()
		if err := q.Err(); err != nil {
			return err
		}
	}
	now := db.NowMillis()
	var msgRows, contactRows []any
	var events []webhook.Event
	nMsg, nContact := 0, 0
	contacts := map[key]bool{}
	for _, it := range items {
		m := it.m
		k := key{it.accountID, m.From, m.Id}
		if known[k] {
			continue // a redelivery (or a repeat within this batch)
		}
		var content *messagev1.Content
		var plain []byte
		if !it.forceUnknown {
			opened, err := txns[it.accountID].Open(ctx, m.From, m.Enc)
			switch {
			case errors.Is(err, e2e.ErrDuplicate):
				continue // decrypted before: nothing to store
			case errors.Is(err, e2e.ErrUndecryptable):
				s.log.Warn("undecryptable message; asking the sender to encrypt it again", "from", m.From, "id", m.Id, "err", err)
				it.outcome = Undecryptable
				continue
			case err != nil:
				return err
			}
			plain = opened.Plaintext
			content = new(messagev1.Content)
			if err := proto.Unmarshal(plain, content); err != nil {
				s.log.Warn("unreadable message content", "from", m.From, "id", m.Id, "err", err)
				content, plain = nil, nil
			}
			if opened.IdentityChanged != "" {
				app, err := s.settings.Get(ctx, it.accountID)
				if err != nil {
					return err
				}
				s.log.Info("customer's identity key changed; trusted the new one", "customer", m.From)
				if app.ShowSecurityNotifications {
					events = append(events, webhook.IdentityChangedEvent(it.accountID, m.From, "sys."+m.Id, opened.IdentityChanged, m.T))
				}
			}
		}
		known[k] = true
		it.isNew = true
		msgRows = append(msgRows, it.accountID, m.From, m.Id, it.shard, m.T, nonNil(plain), now)
		nMsg++
		if ck := (key{acct: it.accountID, peer: m.From}); !contacts[ck] {
			contacts[ck] = true
			contactRows = append(contactRows, it.accountID, m.From, m.PushName, m.T*1000, now)
			nContact++
		}
		var c webhook.Contact
		c.Profile.Name, c.WaID = m.PushName, m.From
		payload := inboundPayload(m, content)
		if md := content.GetMedia(); md != nil {
			wait, err := s.addMedia(ctx, tx, it.accountID, md, c, &payload)
			if err != nil {
				return err
			}
			if wait {
				it.download = true
				continue // the webhook goes out once the file is on the volume
			}
		}
		events = append(events, webhook.MessageEvent(it.accountID, c, payload))
	}
	for _, t := range txns {
		if err := t.Commit(ctx); err != nil {
			return err
		}
	}
	if nMsg > 0 {
		if _, err := tx.ExecContext(ctx, "INSERT INTO inbound_messages (account_id, peer, id, shard, t, content, created_at) VALUES "+
			db.Rows("(?,?,?,?,?,?,?)", nMsg), msgRows...); err != nil {
			if db.IsDuplicate(err) {
				// A concurrent batch stored one of these first (a peer's
				// first message, whose session row did not exist to lock):
				// run again, and it is seen as stored.
				return fmt.Errorf("%w: %v", db.ErrRetry, err)
			}
			return err
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO contacts (account_id, wa_id, profile_name, last_inbound_at, updated_at) VALUES `+
			db.Rows("(?,?,?,?,?)", nContact)+`
			ON DUPLICATE KEY UPDATE profile_name = VALUES(profile_name), last_inbound_at = GREATEST(last_inbound_at, VALUES(last_inbound_at)), updated_at = VALUES(updated_at)`,
			contactRows...); err != nil {
			return err
		}
	}
	return webhook.Enqueue(tx, events...)
}

func nonNil(b []byte) []byte {
	if b == nil {
		return []byte{}
	}
	return b
}

// addMedia records the file of an inbound media message and puts its media
// object in the payload. For the types in media.auto_download the file is
// downloaded before the webhook (wait: the event is stored with the file's
// row and enqueued by the download); otherwise on the first GET. A message
// that does not describe a usable file is reported as a failed download.
func (s *Store) addMedia(ctx context.Context, tx *sql.Tx, accountID int64, md *messagev1.Media, c webhook.Contact, p *webhook.InboundMessage) (wait bool, err error) {
	in := medialib.Inbound{MsgType: md.Type, MimeType: md.MimeType, DirectPath: md.DirectPath, MediaKey: md.MediaKey,
		FileSHA256: md.FileSha256, FileEncSHA256: md.FileEncSha256, FileLength: int64(md.FileLength)}
	obj := &message.MediaObject{MimeType: md.MimeType, SHA256: hex.EncodeToString(md.FileSha256), Caption: md.Caption, Filename: md.Filename}
	if media.Limit(md.Type) == 0 {
		p.Type, p.Object = "unknown", nil
		p.Errors = append(p.Errors, webhook.Err(errcode.UnsupportedType, ""))
		return false, nil
	}
	if err := in.Valid(); err != nil {
		s.log.Warn("inbound media message without a usable file", "from", p.From, "id", p.ID, "err", err)
		p.Errors = append(p.Errors, webhook.Err(errcode.MediaDownload, err.Error()))
		return false, p.SetObject(md.Type, obj)
	}
	app, err := s.settings.Get(ctx, accountID)
	if err != nil {
		return false, err
	}
	obj.ID = medialib.NewID()
	if err := p.SetObject(md.Type, obj); err != nil {
		return false, err
	}
	auto := slices.Contains(app.Media.AutoDownload, md.Type)
	var ev []byte
	if auto {
		if ev, err = webhook.MessageEventJSON(c, *p); err != nil {
			return false, err
		}
	}
	return auto, s.media.AddInbound(tx, accountID, obj.ID, in, auto, ev)
}

// inboundPayload renders the on-prem messages[] entry with the message
// registry: the type's object, the reply context, or type "unknown" with
// error 501 for content this coreapp cannot read.
func inboundPayload(m *chatdv1.Message, c *messagev1.Content) webhook.InboundMessage {
	out := webhook.InboundMessage{From: m.From, ID: m.Id, Timestamp: strconv.FormatInt(m.T, 10)}
	if ctx := c.GetContext(); ctx != nil && ctx.MessageId != "" {
		out.Context = &webhook.MessageContext{From: ctx.From, ID: ctx.MessageId}
	}
	typ, obj, e := message.Default.Inbound(c)
	if e == nil {
		e2 := out.SetObject(typ, obj)
		if e2 == nil {
			return out
		}
		e = &errcode.Error{Code: errcode.UnsupportedType}
	}
	out.Type = "unknown"
	out.Errors = []webhook.Error{webhook.Err(e.Code, e.Details)}
	return out
}

// ErrNotFound is returned for an unknown inbound message.
var ErrNotFound = errors.New("message not found")

// maxReceiptIDs caps the message ids of one receipt stanza.
const maxReceiptIDs = 256

// MarkRead marks an inbound message and every earlier unread one from the
// same customer read, and queues read receipts for them. It returns the
// shard whose sender must send them.
func (s *Store) MarkRead(ctx context.Context, accountID int64, id string) (uint32, error) {
	var sh uint32
	err := db.Tx(ctx, s.db, func(tx *sql.Tx) error {
		var (
			peer string
			seq  int64
		)
		err := tx.QueryRowContext(ctx, "SELECT peer, seq FROM inbound_messages WHERE account_id = ? AND id = ? ORDER BY seq LIMIT 1", accountID, id).Scan(&peer, &seq)
		if errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("%s: %w", id, ErrNotFound)
		}
		if err != nil {
			return err
		}
		// The receipt goes out on the customer's slot under the account's
		// shard count as of this transaction (a shard change re-maps the
		// receipts queued before it).
		var shards int
		if err := tx.QueryRowContext(ctx, "SELECT shards FROM accounts WHERE id = ? LOCK IN SHARE MODE", accountID).Scan(&shards); err != nil && !errors.Is(err, sql.ErrNoRows) {
			return err
		}
		sh = shard.For(peer, max(shards, 1))
		rows, err := tx.QueryContext(ctx, "SELECT seq, id FROM inbound_messages WHERE account_id = ? AND peer = ? AND seq <= ? AND read_at = 0 ORDER BY seq FOR UPDATE", accountID, peer, seq)
		if err != nil {
			return err
		}
		var ids []string
		var seqs []any
		for rows.Next() {
			var s int64
			var mid string
			if err := rows.Scan(&s, &mid); err != nil {
				rows.Close()
				return err
			}
			ids, seqs = append(ids, mid), append(seqs, s)
		}
		rows.Close()
		if err := rows.Err(); err != nil || len(ids) == 0 {
			return err // already read
		}
		now := db.NowMillis()
		if _, err := tx.ExecContext(ctx, "UPDATE inbound_messages SET read_at = ? WHERE seq IN (?"+strings.Repeat(",?", len(seqs)-1)+")",
			append([]any{now}, seqs...)...); err != nil {
			return err
		}
		for len(ids) > 0 {
			n := min(len(ids), maxReceiptIDs)
			if _, err := tx.ExecContext(ctx, "INSERT INTO outbound_receipts (account_id, id, peer, shard, type, message_ids, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
				accountID, "rcpt."+rand.Text(), peer, sh, int32(chatdv1.ReceiptType_RECEIPT_TYPE_READ), strings.Join(ids[:n], ","), now); err != nil {
				return err
			}
			ids = ids[n:]
		}
		return nil
	})
	return sh, err
}
