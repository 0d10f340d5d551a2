// Package waphone is a simulated customer phone on the chatd network: it
// registers a consumer number, keeps a session, receives every message type
// of the API (package api/message: text, media, location, contacts,
// interactive buttons and lists, reactions; files encrypted with
// media/encrypt and carried by chatd's media server through
// chatd/mediaconn) and shows each in the API's send shape, sends what a
// customer sends (text, files, location, contacts, reactions, the answer to
// an interactive message with Choose), sends delivered receipts by itself
// and read receipts on request, and reports everything as Events.
//
// The phone's state lives in its home directory: phone.json (number, name,
// network addresses, static key; mode 0600), seen.log (the ids of the
// messages it has shown, so a redelivery is never shown twice), the Signal
// state (keys.go), media/ (received files, named by the SHA-256 of their
// content) and tmp/ (files being encrypted or downloaded).
//
// A Phone is safe for concurrent use. Run owns every goroutine: the
// session's, a sender that seals, uploads and sends (nothing network-bound
// runs on the caller of SendText or SendMedia), and an inbox that handles
// what arrives, in order, downloading attachments there so that the
// session's reader never waits for them. Events is closed when Run returns.
package waphone

import (
	"bufio"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/openwaba/openwaba/api/message"
	"github.com/openwaba/openwaba/api/phone"
	"github.com/openwaba/openwaba/chatd/clientproto"
	"github.com/openwaba/openwaba/chatd/e2ee"
	"github.com/openwaba/openwaba/chatd/mediaconn"
	"github.com/openwaba/openwaba/chatd/session"
	"github.com/openwaba/openwaba/chatd/wire"
	chatdv1 "github.com/openwaba/openwaba/proto/gen/chatd/v1"
	messagev1 "github.com/openwaba/openwaba/proto/gen/message/v1"
)

// Event is one thing that happened on the phone; it is what `waphone --json`
// prints, one per line.
type Event struct {
	// message, receipt, queued, ready, error, profile, or security_code_changed
	// (From reinstalled or moved: the phone trusts its new identity, as
	// WhatsApp does, and says so).
	Event string `json:"event"`
	ID    string `json:"id,omitempty"`
	From  string `json:"from,omitempty"`
	To    string `json:"to,omitempty"`
	// Type is text, image, audio, video, document or sticker (unknown for
	// content this phone does not understand).
	Type string `json:"type,omitempty"`
	Text string `json:"text,omitempty"`
	// A received attachment: where the phone saved it (media/<sha256><ext>
	// in its home), the hex SHA-256 of its content, and what the sender
	// said about it.
	File      string   `json:"file,omitempty"`
	SHA256    string   `json:"sha256,omitempty"`
	MimeType  string   `json:"mime_type,omitempty"`
	Caption   string   `json:"caption,omitempty"`
	Filename  string   `json:"filename,omitempty"`
	Timestamp string   `json:"timestamp,omitempty"`
	Status    string   `json:"status,omitempty"` // receipts: sent, delivered, read
	Context   *Context `json:"context,omitempty"`
	Name      string   `json:"name,omitempty"` // the sender's profile name
	Error     string   `json:"error,omitempty"`
	// Object is the received message's content in the API's send shape
	// (package message), printed under Type: "location":{…}, "contacts":[…],
	// "interactive":{…}, "reaction":{…}, "image":{…}. Text messages keep
	// their body in Text.
	Object any `json:"-"`
	// Content is the received message as it travelled (for Go callers).
	Content *messagev1.Content `json:"-"`
	// A profile event (Phone.Profile): the account's number, about text,
	// photo hash and business profile (Name is its name).
	Number      string          `json:"number,omitempty"`
	About       string          `json:"about,omitempty"`
	PhotoSHA256 string          `json:"photo_sha256,omitempty"`
	Business    json.RawMessage `json:"business,omitempty"`
}

// event is Event's JSON without Object.
type event Event

// MarshalJSON prints Object under the type's name.
func (e Event) MarshalJSON() ([]byte, error) {
	b, err := json.Marshal(event(e))
	if err != nil || e.Object == nil || e.Type == "" || e.Type == "text" {
		return b, err
	}
	obj, err := json.Marshal(e.Object)
	if err != nil {
		return nil, err
	}
	key, _ := json.Marshal(e.Type)
	out := append(b[:len(b)-1:len(b)-1], ',')
	out = append(append(append(out, key...), ':'), obj...)
	return append(out, '}'), nil
}

// Context points at the message a received message replies to.
type Context struct {
	ID   string `json:"id"`
	From string `json:"from,omitempty"`
}

// homeConfig is phone.json.
type homeConfig struct {
	Number    string   `json:"number"`
	Name      string   `json:"name"`
	Network   []string `json:"network"`
	StaticKey string   `json:"static_key"` // hex private‖public
	RootKey   string   `json:"root_key"`   // the network root key, base64
}

const (
	configFile = "phone.json"
	seenFile   = "seen.log"
)

func loadHome(home string) (homeConfig, wire.KeyPair, error) {
	var hc homeConfig
	b, err := os.ReadFile(filepath.Join(home, configFile))
	if err != nil {
		return hc, wire.KeyPair{}, fmt.Errorf("phone home %s: %w (register first)", home, err)
	}
	if err := json.Unmarshal(b, &hc); err != nil {
		return hc, wire.KeyPair{}, fmt.Errorf("%s: %w", configFile, err)
	}
	k, err := hex.DecodeString(hc.StaticKey)
	if err != nil || len(k) != 64 {
		return hc, wire.KeyPair{}, fmt.Errorf("%s: bad static_key", configFile)
	}
	return hc, wire.KeyPair{Private: k[:32], Public: k[32:]}, nil
}

func saveHome(home string, hc homeConfig) error {
	if err := os.MkdirAll(home, 0o700); err != nil {
		return err
	}
	b, err := json.MarshalIndent(hc, "", "  ")
	if err != nil {
		return err
	}
	tmp := filepath.Join(home, configFile+".tmp")
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, filepath.Join(home, configFile))
}

// RegisterOptions say how to register a phone.
type RegisterOptions struct {
	Home    string
	Network []string // chat addresses, e.g. 127.0.0.1:5222, 127.0.0.1:5443
	// Admin is chatd's sandbox admin address (host:port), where the
	// verification code is read when Code is empty.
	Admin  string
	Number string
	Name   string
	Code   string
	Log    *slog.Logger
	// RootKey is the network root key the phone pins. When nil, Register
	// reads it from the admin API (GET /sandbox/root-key): trust on first
	// use, acceptable for the sandbox because the admin API answers on
	// loopback (or the compose project's network) only. The key is kept in
	// the phone's home and used for every later connection.
	RootKey ed25519.PublicKey
}

// Register registers opts.Number on the network and writes the phone's home.
// Registering again with the same home keeps the key; a new home is a new
// install (a new key).
func Register(ctx context.Context, o RegisterOptions) error {
	if !phone.Valid(o.Number) {
		return fmt.Errorf("number %q must be 5 to 20 digits", o.Number)
	}
	if len(o.Network) == 0 {
		return errors.New("no network address")
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	key, err := wire.GenerateKeyPair()
	if err != nil {
		return err
	}
	if hc, k, err := loadHome(o.Home); err == nil && hc.Number == o.Number {
		key = k
	}
	if o.RootKey == nil {
		if o.RootKey, err = SandboxRootKey(ctx, o.Admin); err != nil {
			return err
		}
	}
	login := &chatdv1.Login{Kind: chatdv1.ConnKind_CONN_KIND_REGISTER, Account: o.Number, ClientVersion: "waphone/1"}
	sc := session.Config{Addrs: o.Network, Static: key, RootKey: o.RootKey, Log: o.Log}
	err = session.Once(ctx, sc, login, func(iq func(context.Context, *chatdv1.IQ) (*chatdv1.IQ, error)) error {
		res, err := iq(ctx, &chatdv1.IQ{Type: chatdv1.IQType_IQ_TYPE_SET, Payload: &chatdv1.IQ_Register{Register: &chatdv1.RegisterRequest{
			Number: o.Number, Kind: chatdv1.AccountKind_ACCOUNT_KIND_CONSUMER, Method: "sms", Name: o.Name}}})
		if err != nil {
			return fmt.Errorf("register: %w", err)
		}
		if res.GetRegisterResult().GetStatus() == "registered" {
			return nil
		}
		code := o.Code
		if code == "" {
			if code, err = SandboxCode(ctx, o.Admin, o.Number); err != nil {
				return err
			}
		}
		if _, err := iq(ctx, &chatdv1.IQ{Type: chatdv1.IQType_IQ_TYPE_SET, Payload: &chatdv1.IQ_Verify{Verify: &chatdv1.VerifyRequest{Number: o.Number, Code: code}}}); err != nil {
			return fmt.Errorf("verify: %w", err)
		}
		return nil
	})
	if err != nil {
		return err
	}
	return saveHome(o.Home, homeConfig{Number: o.Number, Name: o.Name, Network: o.Network,
		StaticKey: hex.EncodeToString(append(append([]byte{}, key.Private...), key.Public...)), RootKey: wire.EncodeRootKey(o.RootKey)})
}

// SandboxCode reads the pending verification code of number from chatd's
// sandbox admin API at admin (host:port).
func SandboxCode(ctx context.Context, admin, number string) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+admin+"/sandbox/codes/"+number, nil)
	if err != nil {
		return "", err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", fmt.Errorf("read sandbox code: %w", err)
	}
	defer resp.Body.Close()
	var body struct {
		Code  string `json:"code"`
		Error string `json:"error"`
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 4096)).Decode(&body); err != nil {
		return "", fmt.Errorf("read sandbox code: %s: %w", resp.Status, err)
	}
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("read sandbox code: %s: %s", resp.Status, body.Error)
	}
	return body.Code, nil
}

// Phone is a registered phone.
type Phone struct {
	home   string
	hc     homeConfig
	log    *slog.Logger
	sess   *session.Session
	media  *mediaconn.Client
	events chan Event
	in     *inbox // what the reader received, handled in order by Run's inbox goroutine

	keys         e2e
	tasks        chan func(context.Context) // network work the reader must not wait for
	flushPending atomic.Bool                // a flush is queued in tasks
	sendMu       sync.Mutex                 // serializes sealing, so messages keep their order

	mu      sync.Mutex        // guards the fields below
	seen    map[string]string // message id → sender, for messages shown
	seenW   *os.File
	outbox  map[string]*chatdv1.Stanza // sealed and sent, not yet acked by chatd
	queue   []*outMsg                  // accepted by SendText, not sealed yet (offline)
	recent  map[string]*outMsg         // sent messages, kept for retry receipts
	order   []string                   // recent's insertion order
	retries map[string]uint32          // "from id" → retry receipts sent for it
	// interactive are the interactive messages received, for Choose (the
	// last maxInteractive, in interactiveOrder).
	interactive      map[string]interactiveMsg
	interactiveOrder []string
}

// interactiveMsg is a received message a customer may answer by choice:
// an interactive message, or a template with quick-reply buttons.
type interactiveMsg struct {
	from string
	in   *messagev1.Interactive
	tpl  *messagev1.Template
}

// maxInteractive is how many received interactive messages Choose knows.
const maxInteractive = 1000

// outMsg is a message the phone sends.
type outMsg struct {
	id, to  string
	content *messagev1.Content // nil until file is encrypted and uploaded
	file    *outFile
}

// retryFlush is how soon a message the network asked to send again later is
// tried again.
const retryFlush = time.Second

// maxRecent is how many sent messages are kept to answer retry receipts.
const maxRecent = 256

// maxRetries is how many retry receipts the phone sends for one message,
// and the highest retry count it answers (the network's rule).
const maxRetries = clientproto.MaxRetries

// Options tune Open.
type Options struct {
	Log *slog.Logger
	// EventBuffer is the Events channel's capacity (default 10000). When it
	// is full the phone stops handling (and acking) what arrives until it
	// drains; chatd then stops pushing once its window of unacked stanzas
	// is full. The session keeps reading (IQ answers, pings) all along.
	EventBuffer int
	// Session overrides session timings (tests); Addrs, Static, Login and
	// Handler are always set by the phone.
	Session session.Config
	// Media overrides media client settings (tests); IQ, Addr and Log are
	// always set by the phone.
	Media mediaconn.Config
}

// Open loads the phone in home. Call Run to connect.
func Open(home string, o Options) (*Phone, error) {
	home, err := filepath.Abs(home) // events name saved files by absolute path
	if err != nil {
		return nil, err
	}
	hc, key, err := loadHome(home)
	if err != nil {
		return nil, err
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	if o.EventBuffer == 0 {
		o.EventBuffer = 10000
	}
	keys, err := openKeyring(home)
	if err != nil {
		return nil, err
	}
	p := &Phone{home: home, hc: hc, log: o.Log, events: make(chan Event, o.EventBuffer), keys: keys, in: newInbox(),
		tasks: make(chan func(context.Context), 1024), seen: map[string]string{}, outbox: map[string]*chatdv1.Stanza{},
		recent: map[string]*outMsg{}, retries: map[string]uint32{}, interactive: map[string]interactiveMsg{}}
	if err := p.prepareDirs(); err != nil {
		return nil, err
	}
	if err := p.loadSeen(); err != nil {
		return nil, err
	}
	sc := o.Session
	sc.Addrs, sc.Static, sc.Handler, sc.Log = hc.Network, key, p, o.Log
	if sc.RootKey, err = hc.rootKey(); err != nil {
		return nil, err
	}
	sc.Login = func() *chatdv1.Login {
		return &chatdv1.Login{Kind: chatdv1.ConnKind_CONN_KIND_SESSION, Account: hc.Number, ClientVersion: "waphone/1", Passive: true}
	}
	p.sess = session.New(sc)
	mc := o.Media
	mc.IQ, mc.Addr, mc.Log = p.sess.IQ, p.sess.Addr, o.Log
	p.media = mediaconn.New(mc)
	return p, nil
}

func (p *Phone) loadSeen() error {
	path := filepath.Join(p.home, seenFile)
	if f, err := os.Open(path); err == nil {
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			from, id, ok := strings.Cut(sc.Text(), " ")
			if ok {
				p.seen[id] = from
			}
		}
		f.Close()
	}
	w, err := os.OpenFile(path, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	p.seenW = w
	return nil
}

// Number is the phone's number.
func (p *Phone) Number() string { return p.hc.Number }

// Home is the phone's home directory.
func (p *Phone) Home() string { return p.home }

// Events delivers what happens on the phone. It is closed when Run returns.
func (p *Phone) Events() <-chan Event { return p.events }

// State is the connection state.
func (p *Phone) State() session.State { return p.sess.State() }

// Run keeps the phone online until ctx ends (or the network ends the
// session for good).
func (p *Phone) Run(ctx context.Context) error {
	defer close(p.events)
	defer p.seenW.Close()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			select {
			case <-ctx.Done():
				return
			case task := <-p.tasks:
				task(ctx)
			}
		}
	})
	wg.Go(func() { p.in.run(ctx, p.decryptBatch, p.handle) })
	err := p.sess.Run(ctx)
	cancel() // also when the session ended by itself
	wg.Wait()
	p.media.Close()
	if cerr := p.keys.close(); cerr != nil {
		p.log.Warn("closing the key journal failed", "err", cerr)
	}
	return err
}

// later runs task on the phone's worker goroutine.
func (p *Phone) later(ctx context.Context, task func(context.Context)) {
	select {
	case p.tasks <- task:
	case <-ctx.Done():
	}
}

// scheduleFlush has the worker send what is queued, unless a flush is
// queued already.
func (p *Phone) scheduleFlush(ctx context.Context) {
	if p.flushPending.CompareAndSwap(false, true) {
		p.later(ctx, func(ctx context.Context) {
			p.flushPending.Store(false)
			p.flush(ctx)
		})
	}
}

// emitChanged reports the peers whose security code changed (the keyring
// trusted their new identity), outside the keyring's lock.
func (p *Phone) emitChanged(ctx context.Context) {
	for _, peer := range p.keys.takeChanged() {
		p.emit(ctx, Event{Event: "security_code_changed", From: peer})
	}
}

func (p *Phone) emit(ctx context.Context, e Event) {
	select {
	case p.events <- e:
	case <-ctx.Done():
	}
}

// newMessageID returns an id in WhatsApp's phone style.
func newMessageID() string {
	var b [10]byte
	rand.Read(b[:])
	return "3EB0" + strings.ToUpper(hex.EncodeToString(b[:]))
}

// SendText sends a text message to a number and returns its id (id, when not
// empty, is used as the message id). The message is encrypted for the
// recipient by the phone's worker when the phone is online (at once, or when
// it reconnects) and sent again on every reconnect until chatd acks it; the
// ack is reported as a "sent" receipt.
func (p *Phone) SendText(ctx context.Context, to, text, replyTo, id string) (string, error) {
	content := &messagev1.Content{Body: &messagev1.Content_Text{Text: &messagev1.Text{Body: text}}}
	if replyTo != "" {
		content.Context = &messagev1.ContextInfo{MessageId: replyTo, From: p.sender(replyTo)}
	}
	return p.SendContent(ctx, to, content, id)
}

// Send sends a message of any type a customer can send in the API's shape
// (package message: {"latitude",…} for location, the cards for contacts,
// {"message_id","emoji"} for reaction, …), optionally replying to replyTo,
// and returns its id.
func (p *Phone) Send(ctx context.Context, to, msgType string, obj json.RawMessage, replyTo, id string) (string, error) {
	c, err := message.Default.Compose(msgType, obj, replyTo, p.sender(replyTo))
	if err != nil {
		return "", err
	}
	return p.SendContent(ctx, to, c, id)
}

// Choose answers the interactive message id with one of its buttons or
// list rows (its id, or its number from 1), as a customer taps it; the
// business receives the interactive reply with the message as context. On
// a template message it taps a quick-reply button (its text, payload or
// number): the business receives a "button" message.
func (p *Phone) Choose(ctx context.Context, id, choice string) (string, error) {
	p.mu.Lock()
	im, ok := p.interactive[id]
	p.mu.Unlock()
	if !ok {
		return "", fmt.Errorf("no interactive message or template with quick replies %s on this phone", id)
	}
	var c *messagev1.Content
	var err error
	if im.tpl != nil {
		c, err = message.TapButton(im.tpl, id, im.from, choice)
	} else {
		c, err = message.Reply(im.in, id, im.from, choice)
	}
	if err != nil {
		return "", err
	}
	return p.SendContent(ctx, im.from, c, "")
}

// SendContent sends content to a number and returns its id.
func (p *Phone) SendContent(ctx context.Context, to string, content *messagev1.Content, id string) (string, error) {
	id, err := checkSend(to, id)
	if err != nil {
		return "", err
	}
	p.enqueue(ctx, &outMsg{id: id, to: to, content: content})
	return id, nil
}

// sender is who sent the message id this phone showed ("" if none).
func (p *Phone) sender(id string) string {
	if id == "" {
		return ""
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.seen[id]
}

// checkSend checks a recipient and returns the message id to use.
func checkSend(to, id string) (string, error) {
	if !phone.Valid(to) {
		return "", fmt.Errorf("recipient %q must be 5 to 20 digits", to)
	}
	if id == "" {
		id = newMessageID()
	}
	if len(id) > 64 {
		return "", errors.New("message id longer than 64 bytes")
	}
	return id, nil
}

// enqueue queues m for sending, behind everything queued before it.
func (p *Phone) enqueue(ctx context.Context, m *outMsg) {
	p.mu.Lock()
	p.queue = append(p.queue, m)
	p.mu.Unlock()
	p.scheduleFlush(ctx)
}

// flush prepares (media: encrypts and uploads), seals and sends the queued
// messages in order, on the worker goroutine; it stops at the first one that
// cannot go now (offline, upload failed for a while) and leaves the rest
// queued for the next connection. A message that can never go (a recipient
// the network does not know, an attachment whose file is gone, too large or
// refused by the server) is dropped with an error event.
func (p *Phone) flush(ctx context.Context) {
	p.sendMu.Lock()
	defer p.sendMu.Unlock()
	// Messages to peers with a session are sealed one after another and
	// the keys stored once for all of them before any is sent (a message
	// needing a bundle or a file goes alone, as before).
	var pending []*chatdv1.Stanza
	commit := func() bool {
		if len(pending) == 0 {
			return true
		}
		if err := p.keys.store(); err != nil {
			// They stay in the outbox: the next connection sends them.
			p.log.Warn("storing the keys failed; the sealed messages wait for the next connection", "err", err)
			pending = nil
			return false
		}
		for _, st := range pending {
			p.sess.TrySend(st) // when offline, Connected resends it
		}
		pending = nil
		return true
	}
	defer commit()
	for {
		p.mu.Lock()
		if len(p.queue) == 0 {
			p.mu.Unlock()
			return
		}
		m := p.queue[0]
		p.mu.Unlock()
		if m.content != nil && p.keys.hasSession(ctx, m.to) {
			enc, err := p.keys.sealDeferred(ctx, m.to, m.content)
			p.emitChanged(ctx)
			if err == nil {
				st := &chatdv1.Stanza{Body: &chatdv1.Stanza_Message{Message: &chatdv1.Message{Id: m.id, To: m.to, Kind: message.Default.Kind(m.content), Enc: enc, PushName: p.hc.Name}}}
				p.sent(m, st)
				pending = append(pending, st)
				continue
			}
		}
		if !commit() {
			return
		}
		if m.content == nil {
			if p.sess.Addr() == "" {
				return // offline: the next connection flushes
			}
			if err := p.prepare(ctx, m); err != nil {
				if !permanent(err) {
					p.log.Info("attachment waits for the network", "id", m.id, "err", err)
					return
				}
				p.log.Warn("attachment cannot be sent", "id", m.id, "err", err)
				p.mu.Lock()
				p.queue = p.queue[1:]
				p.mu.Unlock()
				p.emit(ctx, Event{Event: "error", ID: m.id, To: m.to, Error: "media upload failed: " + err.Error()})
				continue
			}
		}
		st, err := p.seal(ctx, m, 0, false)
		var ie *session.IQError
		if errors.As(err, &ie) && ie.Code == 404 {
			// No such account (or it never published keys): waiting cannot
			// help, and the messages behind it must not wait for it.
			p.log.Warn("message cannot be sent", "id", m.id, "to", m.to, "err", err)
			p.mu.Lock()
			p.queue = p.queue[1:]
			p.mu.Unlock()
			p.emit(ctx, Event{Event: "error", ID: m.id, To: m.to, Error: "not on the network: " + ie.Text})
			continue
		}
		if err != nil {
			p.log.Debug("message waits for the network", "id", m.id, "err", err)
			if errors.As(err, &ie) && p.sess.Addr() != "" {
				// Online, and the network said to try again (the peer has
				// not published its keys yet): try again shortly.
				time.AfterFunc(retryFlush, func() { p.scheduleFlush(ctx) })
			}
			return
		}
		p.sent(m, st)
		p.sess.TrySend(st) // when offline, Connected resends it
	}
}

// sent moves the head of the queue, m, to the outbox as st.
func (p *Phone) sent(m *outMsg, st *chatdv1.Stanza) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.queue = p.queue[1:]
	p.outbox[m.id] = st
	p.recent[m.id] = m
	p.order = append(p.order, m.id)
	for len(p.order) > maxRecent {
		delete(p.recent, p.order[0])
		p.order = p.order[1:]
	}
}

// seal encrypts m, fetching the recipient's bundle when there is no session
// (or when rebuild asks for a new session).
func (p *Phone) seal(ctx context.Context, m *outMsg, retry uint32, rebuild bool) (*chatdv1.Stanza, error) {
	if rebuild {
		if err := p.keys.forget(ctx, m.to); err != nil {
			return nil, err
		}
	}
	var b *chatdv1.PreKeyBundle
	if !p.keys.hasSession(ctx, m.to) {
		res, err := p.sess.IQ(ctx, &chatdv1.IQ{Type: chatdv1.IQType_IQ_TYPE_GET, Payload: &chatdv1.IQ_PrekeyFetch{PrekeyFetch: &chatdv1.PreKeyFetch{Number: m.to}}})
		if err != nil {
			return nil, fmt.Errorf("bundle of %s: %w", m.to, err)
		}
		b = res.GetPrekeyBundle()
	}
	enc, err := p.keys.seal(ctx, m.to, m.content, b)
	p.emitChanged(ctx)
	if err != nil {
		return nil, err
	}
	return &chatdv1.Stanza{Body: &chatdv1.Stanza_Message{Message: &chatdv1.Message{Id: m.id, To: m.to, Kind: message.Default.Kind(m.content), Enc: enc, PushName: p.hc.Name, Retry: retry}}}, nil
}

// answerRetry re-encrypts a sent message for a recipient that could not
// decrypt it, rebuilding the session from a new bundle from the second
// retry on.
func (p *Phone) answerRetry(ctx context.Context, id string, count uint32) {
	p.mu.Lock()
	m := p.recent[id]
	p.mu.Unlock()
	if m == nil || count > maxRetries {
		return
	}
	p.sendMu.Lock()
	st, err := p.seal(ctx, m, count, count >= clientproto.RebuildFrom)
	p.sendMu.Unlock()
	if err != nil {
		p.log.Warn("cannot answer a retry receipt", "id", id, "err", err)
		return
	}
	p.mu.Lock()
	p.outbox[retryKey(id, count)] = st
	p.mu.Unlock()
	p.sess.TrySend(st)
}

func retryKey(id string, n uint32) string {
	if n == 0 {
		return id
	}
	return fmt.Sprintf("%s#r%d", id, n)
}

// ensurePreKeys publishes the phone's keys when chatd has none of them and
// tops the one-time pool up when it runs low.
func (p *Phone) ensurePreKeys(ctx context.Context) {
	if _, _, err := clientproto.EnsurePreKeys(ctx, p.sess.IQ, p.keys.preKeyUpload); err != nil {
		p.log.Warn("publishing pre-keys failed", "err", err)
	}
}

// Read sends a read receipt for a received message.
func (p *Phone) Read(ctx context.Context, id string) error {
	p.mu.Lock()
	from, ok := p.seen[id]
	p.mu.Unlock()
	if !ok {
		return fmt.Errorf("no received message with id %q", id)
	}
	p.receipt(from, chatdv1.ReceiptType_RECEIPT_TYPE_READ, id)
	return nil
}

func (p *Phone) receipt(to string, typ chatdv1.ReceiptType, ids ...string) {
	id := p.sess.NewID()
	st := clientproto.Receipt(id, to, typ, ids...)
	p.mu.Lock()
	p.outbox[id] = st
	p.mu.Unlock()
	p.sess.TrySend(st)
}

// Connected implements session.Handler: publish keys if needed, resend
// everything unacked, then have the worker send what waited for the network
// (uploads can take long: not here, where they would hold up the session).
func (p *Phone) Connected(ctx context.Context, gen uint64) {
	p.ensurePreKeys(ctx)
	p.mu.Lock()
	pending := make([]*chatdv1.Stanza, 0, len(p.outbox))
	for _, st := range p.outbox {
		pending = append(pending, st)
	}
	p.mu.Unlock()
	for _, st := range pending {
		if err := p.sess.Send(ctx, st); err != nil {
			return
		}
	}
	p.scheduleFlush(ctx)
}

// StateChanged implements session.Handler.
func (p *Phone) StateChanged(s session.State) { p.log.Debug("phone state", "state", s.String()) }

func (p *Phone) ack(seq uint64, class chatdv1.AckClass) { p.sess.TrySend(clientproto.Ack(seq, class)) }

// Stanza implements session.Handler. It runs on the session's reader, which
// must keep reading (IQ answers, pings): it only hands st to the inbox.
func (p *Phone) Stanza(_ context.Context, st *chatdv1.Stanza) { p.in.push(st) }

// decryptBatch decrypts the messages of a batch of stanzas together (one
// store of the phone's keys), before handle acts on each.
func (p *Phone) decryptBatch(ctx context.Context, batch []*chatdv1.Stanza) {
	var msgs []*chatdv1.Message
	for _, st := range batch {
		if m := st.GetMessage(); m != nil && m.Enc != nil {
			p.mu.Lock()
			_, dup := p.seen[m.Id]
			p.mu.Unlock()
			if !dup {
				msgs = append(msgs, m)
			}
		}
	}
	if len(msgs) > 1 {
		p.keys.preopen(ctx, msgs)
	}
}

// handle acts on what arrived, on the inbox goroutine, in arrival order.
func (p *Phone) handle(ctx context.Context, st *chatdv1.Stanza) {
	switch b := st.Body.(type) {
	case *chatdv1.Stanza_Message:
		p.onMessage(ctx, b.Message)
	case *chatdv1.Stanza_Receipt:
		r := b.Receipt
		if r.Type == chatdv1.ReceiptType_RECEIPT_TYPE_RETRY {
			count := r.GetRetry().GetCount()
			for _, id := range r.MessageIds {
				p.later(ctx, func(ctx context.Context) { p.answerRetry(ctx, id, count) })
			}
			p.ack(r.QueueSeq, chatdv1.AckClass_ACK_CLASS_RECEIPT)
			return
		}
		status := map[chatdv1.ReceiptType]string{chatdv1.ReceiptType_RECEIPT_TYPE_DELIVERED: "delivered",
			chatdv1.ReceiptType_RECEIPT_TYPE_READ: "read", chatdv1.ReceiptType_RECEIPT_TYPE_PLAYED: "played"}[r.Type]
		if status != "" {
			for _, id := range r.MessageIds {
				p.emit(ctx, Event{Event: "receipt", ID: id, From: r.From, Status: status, Timestamp: strconv.FormatInt(r.T, 10)})
			}
		}
		p.ack(r.QueueSeq, chatdv1.AckClass_ACK_CLASS_RECEIPT)
	case *chatdv1.Stanza_Ack:
		a := b.Ack
		p.mu.Lock()
		st, ok := p.outbox[a.Id]
		delete(p.outbox, a.Id)
		for n := uint32(1); n <= maxRetries; n++ { // resends answering retries
			if rst, rok := p.outbox[retryKey(a.Id, n)]; rok {
				delete(p.outbox, retryKey(a.Id, n))
				if !ok {
					st, ok = rst, true
				}
			}
		}
		p.mu.Unlock()
		if ok && st.GetMessage().GetRetry() > 0 {
			return // the first ack already reported "sent"
		}
		if !ok || st.GetMessage() == nil {
			if a.Error != "" {
				p.emit(ctx, Event{Event: "error", ID: a.Id, Error: a.Error})
			}
			return
		}
		if a.Error != "" {
			p.emit(ctx, Event{Event: "error", ID: a.Id, To: st.GetMessage().To, Error: a.Error})
			return
		}
		p.emit(ctx, Event{Event: "receipt", ID: a.Id, To: st.GetMessage().To, Status: "sent", Timestamp: strconv.FormatInt(a.T, 10)})
	case *chatdv1.Stanza_Notification:
		n := b.Notification
		if n.Type == chatdv1.NotificationType_NOTIFICATION_TYPE_PREKEYS_LOW {
			p.later(ctx, p.ensurePreKeys)
		}
		if n.Type == chatdv1.NotificationType_NOTIFICATION_TYPE_MESSAGE_EXPIRED {
			for _, id := range n.MessageIds {
				p.emit(ctx, Event{Event: "error", ID: id, To: n.Peer, Error: "expired"})
			}
		}
		p.ack(n.QueueSeq, chatdv1.AckClass_ACK_CLASS_NOTIFICATION)
	case *chatdv1.Stanza_OfflineComplete:
		p.emit(ctx, Event{Event: "ready", From: p.hc.Number})
	}
}

func (p *Phone) onMessage(ctx context.Context, m *chatdv1.Message) {
	p.mu.Lock()
	_, dup := p.seen[m.Id]
	p.mu.Unlock()
	if dup {
		p.ack(m.QueueSeq, chatdv1.AckClass_ACK_CLASS_MESSAGE)
		return
	}
	content, err := p.keys.open(ctx, m.From, m.Id, m.Enc)
	p.emitChanged(ctx)
	switch {
	case errors.Is(err, e2ee.ErrDuplicate):
		p.ack(m.QueueSeq, chatdv1.AckClass_ACK_CLASS_MESSAGE)
		return
	case err != nil:
		key := m.From + " " + m.Id
		p.mu.Lock()
		p.retries[key]++
		n := p.retries[key]
		p.mu.Unlock()
		p.log.Warn("cannot decrypt a message", "id", m.Id, "from", m.From, "retry", n, "err", err)
		if n <= maxRetries {
			// Ask the sender to encrypt it again (with a new session from the
			// second retry on).
			p.sess.TrySend(clientproto.RetryReceipt(p.sess.NewID(), m.From, m.Id, n, p.keys.registrationID()))
		} else {
			p.emit(ctx, Event{Event: "error", ID: m.Id, From: m.From, Error: "undecryptable: " + err.Error()})
		}
		p.ack(m.QueueSeq, chatdv1.AckClass_ACK_CLASS_MESSAGE)
		return
	}
	e := Event{Event: "message", ID: m.Id, From: m.From, Name: m.PushName, Timestamp: strconv.FormatInt(m.T, 10), Content: content}
	// Files travel apart (a media message's, an interactive header's): the
	// plaintext content stays in the decryption buffer until the ack, so a
	// message redelivered after a crash is fetched again.
	for _, mp := range message.MediaOf(content) {
		md := *mp
		file, sum, err := p.fetch(ctx, md)
		switch {
		case err != nil && (ctx.Err() != nil || p.sess.Addr() == "" || errors.Is(err, session.ErrNotConnected)):
			// Not the blob's fault: the phone is going offline. Leave the
			// message unacked; chatd pushes it again on the next connection.
			p.log.Info("attachment download interrupted; waiting for the redelivery", "id", m.Id, "from", m.From, "err", err)
			return
		case err != nil:
			p.log.Warn("attachment refused", "id", m.Id, "from", m.From, "err", err)
			e = Event{Event: "error", ID: m.Id, From: m.From, Error: "media download failed: " + err.Error()}
		default:
			e.File, e.SHA256, e.MimeType, e.Caption, e.Filename = file, sum, md.MimeType, md.Caption, md.Filename
		}
	}
	if e.Event == "message" {
		typ, obj, ok := message.Default.Show(content)
		switch {
		case !ok:
			e.Type = "unknown"
		case typ == "text":
			e.Type, e.Text = "text", content.GetText().Body
		default:
			e.Type, e.Object = typ, obj
		}
		in, tpl := content.GetInteractive(), content.GetTemplate()
		if len(message.QuickReplies(tpl)) == 0 {
			tpl = nil
		}
		if in != nil || tpl != nil {
			p.mu.Lock()
			p.interactive[m.Id] = interactiveMsg{from: m.From, in: in, tpl: tpl}
			p.interactiveOrder = append(p.interactiveOrder, m.Id)
			for len(p.interactiveOrder) > maxInteractive {
				delete(p.interactive, p.interactiveOrder[0])
				p.interactiveOrder = p.interactiveOrder[1:]
			}
			p.mu.Unlock()
		}
	}
	if c := content.GetContext(); c != nil && c.MessageId != "" && e.Event == "message" {
		e.Context = &Context{ID: c.MessageId, From: c.From}
	}
	p.mu.Lock()
	p.seen[m.Id] = m.From
	fmt.Fprintf(p.seenW, "%s %s\n", m.From, m.Id)
	delete(p.retries, m.From+" "+m.Id)
	p.mu.Unlock()
	p.emit(ctx, e)
	p.receipt(m.From, chatdv1.ReceiptType_RECEIPT_TYPE_DELIVERED, m.Id)
	p.ack(m.QueueSeq, chatdv1.AckClass_ACK_CLASS_MESSAGE)
}

var _ session.Handler = (*Phone)(nil)
