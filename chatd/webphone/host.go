// Package webphone is the web phone: customer phones of the chatd network
// (package waphone, with their keys in their homes on disk) hosted by one
// process that serves a page and a small JSON API on loopback, so that a
// developer sees a conversation as the customer sees it and answers it
// from a browser. The browser holds no keys: every message is sealed,
// uploaded and opened here, exactly as `waphone` does.
//
// Layout: Dir/<number>/ is a waphone home (phone.json, Signal state,
// media/), plus history.jsonl (the phone's records, see Record), sent/
// (files the customer sent, by SHA-256) and profiles.json (what the phone
// last saw of each business's profile).
package webphone

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/openwaba/openwaba/api/phone"
	"github.com/openwaba/openwaba/chatd/session"
	"github.com/openwaba/openwaba/chatd/waphone"
)

// Config says where the phones live and how they reach the network.
type Config struct {
	Dir     string   // one home per phone, Dir/<number>
	Network []string // chat addresses for new phones (host:port, tls://host:port)
	Admin   string   // chatd's sandbox admin API (host:port), for verification codes
	RootKey ed25519.PublicKey
	Log     *slog.Logger
	// Session tunes the phones' connections (zero: waphone's defaults).
	Session session.Config
}

// maxNameRunes is WhatsApp's limit on a profile name.
const maxNameRunes = 25

// Host runs the phones of Dir. Run owns every goroutine.
type Host struct {
	cfg Config
	log *slog.Logger

	mu     sync.Mutex
	phones map[string]*hosted
	ctx    context.Context // Run's, for phones added while it runs
	wg     sync.WaitGroup
	// creating holds the numbers being registered (Create runs outside mu).
	creating map[string]bool
	ready    chan struct{} // closed when Run has opened the phones of Dir
	stopping bool          // Run's context ended: no phone starts any more
}

// errStopping is start's answer once the host is stopping.
var errStopping = errors.New("the web phone is stopping")

// hosted is one phone, its history and what it last saw of its chats.
type hosted struct {
	p       *waphone.Phone
	h       *history
	name    string
	created time.Time

	mu       sync.Mutex
	stopErr  error           // why the phone stopped by itself (nil: it runs)
	read     map[string]bool // incoming message ids the customer has read
	profiles map[string]Profile
}

// stopped says why the phone stopped by itself (nil while it runs).
func (hp *hosted) stopped() error {
	hp.mu.Lock()
	defer hp.mu.Unlock()
	return hp.stopErr
}

// Profile is what the phone last saw of an account's profile.
type Profile struct {
	Number   string          `json:"number"`
	Name     string          `json:"name"`
	About    string          `json:"about,omitempty"`
	Photo    string          `json:"photo,omitempty"` // file name under the phone's files
	Business json.RawMessage `json:"business,omitempty"`
}

// NewHost returns a host for cfg; Run starts it.
func NewHost(cfg Config) *Host {
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	return &Host{cfg: cfg, log: cfg.Log, phones: map[string]*hosted{}, creating: map[string]bool{}, ready: make(chan struct{})}
}

// Ready is closed once Run has opened every phone of Dir.
func (h *Host) Ready() <-chan struct{} { return h.ready }

// Run opens every phone in Dir and keeps them online until ctx ends, then
// waits for them to stop.
func (h *Host) Run(ctx context.Context) error {
	if err := os.MkdirAll(h.cfg.Dir, 0o700); err != nil {
		return err
	}
	entries, err := os.ReadDir(h.cfg.Dir)
	if err != nil {
		return err
	}
	h.mu.Lock()
	h.ctx = ctx
	h.mu.Unlock()
	for _, e := range entries {
		if !e.IsDir() || !phone.Valid(e.Name()) {
			continue
		}
		if err := h.start(e.Name()); err != nil {
			h.log.Error("cannot open a phone", "number", e.Name(), "err", err)
		}
	}
	close(h.ready)
	<-ctx.Done()
	h.mu.Lock()
	h.stopping = true // start adds no goroutine after this
	h.mu.Unlock()
	h.wg.Wait()
	return nil
}

// ErrExists is Create's answer for a number this host has already.
var ErrExists = errors.New("a phone with this number exists")

// BadInputError is input the API refuses (HTTP 400).
type BadInputError struct{ Msg string }

func (e *BadInputError) Error() string { return e.Msg }

func badInput(format string, a ...any) error { return &BadInputError{fmt.Sprintf(format, a...)} }

// Create registers number on the network with a profile name and starts it.
func (h *Host) Create(ctx context.Context, number, name string) error {
	if !phone.Valid(number) {
		return badInput("number %q: want 5 to 20 digits, the country code first", number)
	}
	if name == "" {
		name = "Customer " + number
	}
	if !utf8.ValidString(name) || utf8.RuneCountInString(name) > maxNameRunes {
		return badInput("name: at most %d characters", maxNameRunes)
	}
	h.mu.Lock()
	_, exists := h.phones[number]
	if exists || h.creating[number] {
		h.mu.Unlock()
		return ErrExists
	}
	if h.ctx == nil {
		h.mu.Unlock()
		return errors.New("the host is not running")
	}
	h.creating[number] = true
	hostCtx := h.ctx
	h.mu.Unlock()
	defer func() {
		h.mu.Lock()
		delete(h.creating, number)
		h.mu.Unlock()
	}()
	home := filepath.Join(h.cfg.Dir, number)
	if _, err := os.Stat(filepath.Join(home, "phone.json")); err == nil {
		return ErrExists
	}
	// Registration ends with the request or with the host.
	rctx, cancel := context.WithTimeout(hostCtx, 30*time.Second)
	defer cancel()
	defer context.AfterFunc(ctx, cancel)()
	err := waphone.Register(rctx, waphone.RegisterOptions{Home: home, Network: h.cfg.Network, Admin: h.cfg.Admin,
		Number: number, Name: name, RootKey: h.cfg.RootKey, Log: h.log})
	if err != nil {
		return fmt.Errorf("register %s: %w", number, err)
	}
	return h.start(number)
}

// start opens the phone in Dir/number and runs it under Run's context.
func (h *Host) start(number string) error {
	h.mu.Lock()
	stopping := h.stopping
	h.mu.Unlock()
	if stopping {
		return errStopping
	}
	home := filepath.Join(h.cfg.Dir, number)
	p, err := waphone.Open(home, waphone.Options{Log: h.log.With("phone", number), Session: h.cfg.Session})
	if err != nil {
		return err
	}
	hist, err := openHistory(home)
	if err != nil {
		release(p)
		return err
	}
	hp := &hosted{p: p, h: hist, name: phoneName(home), created: dirTime(home), read: map[string]bool{}, profiles: loadProfiles(home)}
	for _, r := range hist.all() {
		if r.Kind == "read" {
			hp.read[r.ID] = true
		}
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.stopping {
		release(p)
		hist.close()
		return errStopping
	}
	ctx := h.ctx
	h.phones[number] = hp
	h.wg.Go(func() {
		err := p.Run(ctx)
		if ctx.Err() == nil {
			if err == nil {
				err = errors.New("the network ended its session")
			}
			h.log.Error("phone stopped", "number", number, "err", err)
			hp.mu.Lock()
			hp.stopErr = err
			hp.mu.Unlock()
		}
	})
	h.wg.Go(func() {
		defer hist.close()
		for e := range p.Events() {
			hp.record(h.log, e)
		}
	})
	return nil
}

// release frees an opened phone that will not run (Run on an ended
// context closes its files).
func release(p *waphone.Phone) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	p.Run(ctx)
	for range p.Events() {
	}
}

// phoneName reads the profile name from a waphone home's phone.json.
func phoneName(home string) string {
	b, err := os.ReadFile(filepath.Join(home, "phone.json"))
	if err != nil {
		return ""
	}
	var hc struct {
		Name string `json:"name"`
	}
	json.Unmarshal(b, &hc)
	return hc.Name
}

func dirTime(home string) time.Time {
	fi, err := os.Stat(filepath.Join(home, "phone.json"))
	if err != nil {
		return time.Time{}
	}
	return fi.ModTime()
}

// phone returns the hosted phone number.
func (h *Host) phone(number string) (*hosted, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	hp, ok := h.phones[number]
	return hp, ok
}

// PhoneInfo describes a hosted phone.
type PhoneInfo struct {
	Number string `json:"number"`
	Name   string `json:"name"`
	Online bool   `json:"online"`
}

// Phones lists the hosted phones, oldest first.
func (h *Host) Phones() []PhoneInfo {
	h.mu.Lock()
	type item struct {
		info PhoneInfo
		at   time.Time
	}
	var items []item
	for n, hp := range h.phones {
		items = append(items, item{PhoneInfo{Number: n, Name: hp.name, Online: hp.p.State() == session.Connected}, hp.created})
	}
	h.mu.Unlock()
	slices.SortFunc(items, func(a, b item) int {
		if c := a.at.Compare(b.at); c != 0 {
			return c
		}
		return strings.Compare(a.info.Number, b.info.Number)
	})
	out := make([]PhoneInfo, len(items))
	for i, it := range items {
		out[i] = it.info
	}
	return out
}

// record turns a phone event into history.
func (hp *hosted) record(log *slog.Logger, e waphone.Event) {
	var rec Record
	switch e.Event {
	case "message":
		rec = Record{Kind: "message", Dir: "in", Chat: e.From, ID: e.ID, At: eventTime(e.Timestamp), Type: e.Type, Text: e.Text,
			MimeType: e.MimeType, Filename: e.Filename, Caption: e.Caption, SHA256: e.SHA256, Context: e.Context, Name: e.Name}
		if e.Object != nil {
			rec.Object, _ = json.Marshal(e.Object)
		}
		if e.File != "" {
			rec.File = filepath.Base(e.File)
			if fi, err := os.Stat(filepath.Join(hp.p.Home(), "media", rec.File)); err == nil {
				rec.Size = fi.Size()
			}
		}
	case "receipt":
		chat := e.To
		if chat == "" {
			chat = e.From
		}
		rec = Record{Kind: "status", Chat: chat, ID: e.ID, Status: e.Status, At: eventTime(e.Timestamp)}
	case "error":
		out, ok := hp.h.find(e.ID)
		switch {
		case e.ID != "" && ok && out.Dir == "out":
			rec = Record{Kind: "status", Chat: out.Chat, ID: e.ID, Status: "failed", Error: e.Error, At: time.Now().UnixMilli()}
		case e.ID != "" && e.From != "":
			// A message from the business the phone could not show (its
			// file failed its checks, it could not be decrypted).
			rec = Record{Kind: "system", Chat: e.From, ID: e.ID, Text: "A message could not be shown: " + e.Error, At: time.Now().UnixMilli()}
		default:
			log.Warn("phone error", "id", e.ID, "err", e.Error)
			return
		}
	case "security_code_changed":
		rec = Record{Kind: "system", Chat: e.From, Text: "Your security code with " + e.From + " changed.", At: time.Now().UnixMilli()}
	default:
		return
	}
	if rec.At == 0 {
		rec.At = time.Now().UnixMilli()
	}
	if _, err := hp.h.add(rec); err != nil {
		log.Error("cannot keep a history record", "err", err)
	}
}

// eventTime parses waphone's timestamp (unix seconds, or milliseconds)
// into unix milliseconds (0 when absent).
func eventTime(s string) int64 {
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n <= 0 {
		return 0
	}
	if n < 1e12 {
		return n * 1000
	}
	return n
}

const profilesFile = "profiles.json"

func loadProfiles(home string) map[string]Profile {
	out := map[string]Profile{}
	b, err := os.ReadFile(filepath.Join(home, profilesFile))
	if err == nil && len(b) <= 4<<20 {
		json.Unmarshal(b, &out)
	}
	return out
}

// saveProfilesLocked writes hp.profiles (hp.mu held).
func (hp *hosted) saveProfilesLocked() error {
	b, err := json.Marshal(hp.profiles)
	if err != nil {
		return err
	}
	return writeFileAtomic(filepath.Join(hp.p.Home(), profilesFile), b)
}
