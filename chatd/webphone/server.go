package webphone

import (
	"bytes"
	"context"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"mime"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/openwaba/openwaba/api/phone"
	"github.com/openwaba/openwaba/chatd/waphone"
	"github.com/openwaba/openwaba/media"
)

//go:embed static
var static embed.FS

// Limits of the JSON API.
const (
	maxJSONBody = 64 << 10
	// maxTextRunes is WhatsApp's limit on a text message.
	maxTextRunes = 4096
	maxTitle     = 256
	// defaultLimit and maxLimit bound the records one chat request returns.
	defaultLimit = 1000
	maxLimit     = 10_000
	// heartbeat keeps a live channel open through idle proxies.
	heartbeat = 20 * time.Second
	// profileTimeout bounds a profile fetch from the network.
	profileTimeout = 15 * time.Second
)

// sentDir holds the files the customer sent, by content hash.
const sentDir = "sent"

// fileName is the name of a stored file: its SHA-256 and an extension.
var fileName = regexp.MustCompile(`^[0-9a-f]{64}(\.[a-z0-9]{1,10})?$`)

// Server serves the page and the JSON API of a Host.
type Server struct {
	host *Host
	log  *slog.Logger
	// Hosts are the Host header values accepted (empty: any). A page on
	// loopback accepts only its own names, so a web site the browser visits
	// cannot reach it through a DNS name it rebinds to 127.0.0.1.
	Hosts []string
}

// NewServer returns the web phone's handler for host.
func NewServer(host *Host) *Server { return &Server{host: host, log: host.log} }

// Handler is the HTTP handler: the page, its assets and the API, behind
// the Host check and Go's cross-origin protection (a site the browser
// visits cannot post to the API).
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	page := http.HandlerFunc(s.page)
	mux.Handle("GET /{$}", page)
	mux.Handle("GET /phones/{number}", page)
	mux.Handle("GET /phones/{number}/chats/{chat}", page)
	assets, _ := fs.Sub(static, "static")
	mux.Handle("GET /static/", http.StripPrefix("/static/", http.FileServerFS(assets)))
	mux.HandleFunc("GET /api/phones", s.listPhones)
	mux.HandleFunc("POST /api/phones", s.createPhone)
	mux.HandleFunc("GET /api/phones/{number}", s.getPhone)
	mux.HandleFunc("GET /api/phones/{number}/chats", s.listChats)
	mux.HandleFunc("GET /api/phones/{number}/chats/{chat}/messages", s.chatMessages)
	mux.HandleFunc("POST /api/phones/{number}/chats/{chat}/messages", s.send)
	mux.HandleFunc("POST /api/phones/{number}/chats/{chat}/read", s.readChat)
	mux.HandleFunc("GET /api/phones/{number}/chats/{chat}/profile", s.cachedProfile)
	mux.HandleFunc("POST /api/phones/{number}/chats/{chat}/profile", s.profile)
	mux.HandleFunc("POST /api/phones/{number}/messages/{id}/choose", s.choose)
	mux.HandleFunc("GET /api/phones/{number}/files/{name}", s.file)
	mux.HandleFunc("GET /api/phones/{number}/events", s.events)
	return s.checkHost(http.NewCrossOriginProtection().Handler(securityHeaders(jsonMisses(mux))))
}

// jsonMisses answers an API request no route takes (404, or 405 for a
// route that takes other methods) in the API's JSON error shape.
func jsonMisses(mux *http.ServeMux) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h, pattern := mux.Handler(r)
		if pattern != "" || !strings.HasPrefix(r.URL.Path, "/api/") {
			mux.ServeHTTP(w, r)
			return
		}
		rec := &statusRecorder{header: http.Header{}}
		h.ServeHTTP(rec, r) // the mux's own 404 or 405 (and its Allow header)
		if allow := rec.header.Get("Allow"); allow != "" {
			w.Header().Set("Allow", allow)
		}
		if rec.status == http.StatusMethodNotAllowed {
			apiError(w, rec.status, "%s is not allowed on %s (allowed: %s)", r.Method, r.URL.Path, rec.header.Get("Allow"))
			return
		}
		apiError(w, http.StatusNotFound, "no such route: %s %s", r.Method, r.URL.Path)
	})
}

// statusRecorder keeps the status and headers of a response and drops its
// body.
type statusRecorder struct {
	header http.Header
	status int
}

func (r *statusRecorder) Header() http.Header         { return r.header }
func (r *statusRecorder) Write(b []byte) (int, error) { return len(b), nil }
func (r *statusRecorder) WriteHeader(status int)      { r.status = status }

func securityHeaders(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", "default-src 'self'; img-src 'self' blob:; media-src 'self' blob:; object-src 'none'; base-uri 'none'; frame-ancestors 'none'")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		next.ServeHTTP(w, r)
	})
}

func (s *Server) checkHost(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if len(s.Hosts) > 0 && !slices.Contains(s.Hosts, strings.ToLower(r.Host)) {
			apiError(w, http.StatusMisdirectedRequest, "host %q is not this web phone's (%s)", r.Host, strings.Join(s.Hosts, ", "))
			return
		}
		next.ServeHTTP(w, r)
	})
}

// LoopbackHosts are the Host values of a listener on addr when it is a
// loopback address (nil otherwise: any host is accepted).
func LoopbackHosts(addr net.Addr) []string {
	ta, ok := addr.(*net.TCPAddr)
	if !ok || !ta.IP.IsLoopback() {
		return nil
	}
	port := strconv.Itoa(ta.Port)
	return []string{"127.0.0.1:" + port, "localhost:" + port, "[::1]:" + port, net.JoinHostPort(ta.IP.String(), port)}
}

func (s *Server) page(w http.ResponseWriter, r *http.Request) {
	b, err := static.ReadFile("static/index.html")
	if err != nil {
		apiError(w, http.StatusInternalServerError, "the page is missing from this build")
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-cache")
	w.Write(b)
}

// apiError writes {"error":{"message":…}} with status.
func apiError(w http.ResponseWriter, status int, format string, a ...any) {
	writeJSON(w, status, map[string]any{"error": map[string]any{"code": status, "message": fmt.Sprintf(format, a...)}})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

// fail answers err: a BadInputError is 400, anything else 502 (the phone
// or the network refused).
func (s *Server) fail(w http.ResponseWriter, err error) {
	var bad *BadInputError
	switch {
	case errors.As(err, &bad):
		apiError(w, http.StatusBadRequest, "%s", bad.Msg)
	case errors.Is(err, ErrExists):
		apiError(w, http.StatusConflict, "%s", err)
	default:
		apiError(w, http.StatusBadGateway, "%s", err)
	}
}

// decode reads a JSON body of at most maxJSONBody into v.
func decode(w http.ResponseWriter, r *http.Request, v any) bool {
	if mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); mt != "application/json" {
		apiError(w, http.StatusUnsupportedMediaType, "send a JSON body (Content-Type: application/json)")
		return false
	}
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxJSONBody))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			apiError(w, http.StatusRequestEntityTooLarge, "the body is over %d bytes", maxJSONBody)
		} else {
			apiError(w, http.StatusBadRequest, "bad JSON body: %s", err)
		}
		return false
	}
	return true
}

// hosted returns the phone of the request's {number}, answering 404.
func (s *Server) hosted(w http.ResponseWriter, r *http.Request) (*hosted, bool) {
	hp, ok := s.host.phone(r.PathValue("number"))
	if !ok {
		apiError(w, http.StatusNotFound, "no phone %q on this web phone (POST /api/phones creates one)", r.PathValue("number"))
		return nil, false
	}
	if err := hp.stopped(); err != nil {
		apiError(w, http.StatusServiceUnavailable, "phone %s has stopped: %s", r.PathValue("number"), err)
		return nil, false
	}
	return hp, true
}

// chatOf returns the request's {chat}, answering 400 for a bad number.
func chatOf(w http.ResponseWriter, r *http.Request) (string, bool) {
	c := r.PathValue("chat")
	if !phone.Valid(c) {
		apiError(w, http.StatusBadRequest, "chat %q: want the business's number, 5 to 20 digits", c)
		return "", false
	}
	return c, true
}

func (s *Server) listPhones(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]any{"phones": s.host.Phones()})
}

func (s *Server) createPhone(w http.ResponseWriter, r *http.Request) {
	var body struct {
		Number string `json:"number"`
		Name   string `json:"name"`
	}
	if !decode(w, r, &body) {
		return
	}
	if err := s.host.Create(r.Context(), strings.TrimPrefix(body.Number, "+"), body.Name); err != nil {
		s.fail(w, err)
		return
	}
	s.getPhoneNumber(w, strings.TrimPrefix(body.Number, "+"), http.StatusCreated)
}

func (s *Server) getPhone(w http.ResponseWriter, r *http.Request) {
	s.getPhoneNumber(w, r.PathValue("number"), http.StatusOK)
}

func (s *Server) getPhoneNumber(w http.ResponseWriter, number string, status int) {
	for _, p := range s.host.Phones() {
		if p.Number == number {
			writeJSON(w, status, p)
			return
		}
	}
	apiError(w, http.StatusNotFound, "no phone %q on this web phone", number)
}

// ChatInfo is one entry of a phone's chat list.
type ChatInfo struct {
	Number  string  `json:"number"`
	Profile Profile `json:"profile"`
	Last    *Record `json:"last,omitempty"` // the newest message
	Unread  int     `json:"unread"`
}

func (s *Server) listChats(w http.ResponseWriter, r *http.Request) {
	hp, ok := s.hosted(w, r)
	if !ok {
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"chats": hp.chats()})
}

// chats folds the history into the chat list, newest first.
func (hp *hosted) chats() []ChatInfo {
	byChat := map[string]*ChatInfo{}
	var order []string
	hp.mu.Lock()
	read := hp.read
	for _, r := range hp.h.all() {
		c, ok := byChat[r.Chat]
		if !ok {
			c = &ChatInfo{Number: r.Chat}
			byChat[r.Chat] = c
			order = append(order, r.Chat)
		}
		if r.Kind == "message" && r.Type != "reaction" {
			rec := r
			c.Last = &rec
			if r.Dir == "in" && !read[r.ID] {
				c.Unread++
			}
		}
	}
	for _, c := range byChat {
		c.Profile = hp.profiles[c.Number]
		if c.Profile.Number == "" {
			c.Profile.Number = c.Number
		}
	}
	hp.mu.Unlock()
	out := make([]ChatInfo, 0, len(order))
	for _, n := range order {
		out = append(out, *byChat[n])
	}
	slices.SortStableFunc(out, func(a, b ChatInfo) int {
		var at, bt int64
		if a.Last != nil {
			at = a.Last.At
		}
		if b.Last != nil {
			bt = b.Last.At
		}
		return int(min(max(bt-at, -1), 1))
	})
	return out
}

func (s *Server) chatMessages(w http.ResponseWriter, r *http.Request) {
	hp, ok := s.hosted(w, r)
	if !ok {
		return
	}
	chat, ok := chatOf(w, r)
	if !ok {
		return
	}
	limit := defaultLimit
	if v := r.URL.Query().Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > maxLimit {
			apiError(w, http.StatusBadRequest, "limit: want 1 to %d", maxLimit)
			return
		}
		limit = n
	}
	writeJSON(w, http.StatusOK, map[string]any{"records": hp.h.chat(chat, limit)})
}

// sendBody is a message the customer sends, in the API's shapes.
type sendBody struct {
	Type     string          `json:"type"`
	Text     string          `json:"text"`
	ReplyTo  string          `json:"reply_to"`
	Location json.RawMessage `json:"location"`
	Contacts json.RawMessage `json:"contacts"`
	Reaction json.RawMessage `json:"reaction"`
}

func (s *Server) send(w http.ResponseWriter, r *http.Request) {
	hp, ok := s.hosted(w, r)
	if !ok {
		return
	}
	chat, ok := chatOf(w, r)
	if !ok {
		return
	}
	if mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); mt == "multipart/form-data" {
		s.sendFile(w, r, hp, chat)
		return
	}
	var b sendBody
	if !decode(w, r, &b) {
		return
	}
	rec := Record{Kind: "message", Dir: "out", Chat: chat, Type: b.Type, At: time.Now().UnixMilli()}
	if b.ReplyTo != "" {
		rec.Context = &waphone.Context{ID: b.ReplyTo}
	}
	var id string
	var err error
	switch b.Type {
	case "", "text":
		rec.Type = "text"
		if strings.TrimSpace(b.Text) == "" || utf8.RuneCountInString(b.Text) > maxTextRunes {
			apiError(w, http.StatusBadRequest, "text: 1 to %d characters", maxTextRunes)
			return
		}
		rec.Text = b.Text
		id, err = hp.p.SendText(r.Context(), chat, b.Text, b.ReplyTo, "")
	case "location", "contacts", "reaction":
		obj := map[string]json.RawMessage{"location": b.Location, "contacts": b.Contacts, "reaction": b.Reaction}[b.Type]
		if len(obj) == 0 {
			apiError(w, http.StatusBadRequest, "a %s message needs its %q object", b.Type, b.Type)
			return
		}
		rec.Object = obj
		id, err = hp.p.Send(r.Context(), chat, b.Type, obj, b.ReplyTo, "")
	default:
		apiError(w, http.StatusBadRequest, "type %q: the customer sends text, location, contacts or reaction here (files as multipart/form-data)", b.Type)
		return
	}
	s.sent(w, hp, rec, id, err)
}

// sent records a message the phone accepted and answers it.
func (s *Server) sent(w http.ResponseWriter, hp *hosted, rec Record, id string, err error) {
	if err != nil {
		apiError(w, http.StatusBadRequest, "%s", err)
		return
	}
	rec.ID, rec.Status = id, "pending"
	rec, err = hp.h.add(rec)
	if err != nil {
		apiError(w, http.StatusInternalServerError, "the message was queued but not kept in the history: %s", err)
		return
	}
	writeJSON(w, http.StatusAccepted, rec)
}

// maxUploadBody bounds a file upload: the largest media type and a little
// room for the form's other fields.
var maxUploadBody = slices.Max(func() []int64 {
	var out []int64
	for _, k := range media.Kinds {
		out = append(out, k.Max)
	}
	return out
}()) + 64<<10

func (s *Server) sendFile(w http.ResponseWriter, r *http.Request, hp *hosted, chat string) {
	r.Body = http.MaxBytesReader(w, r.Body, maxUploadBody)
	mr, err := r.MultipartReader()
	if err != nil {
		apiError(w, http.StatusBadRequest, "bad multipart body: %s", err)
		return
	}
	fields := map[string]string{}
	var path, filename, sum string
	var size int64
	created, keep := false, false // this request made the file; a message uses it
	defer func() {
		if created && !keep {
			os.Remove(path)
		}
	}()
	for {
		part, err := mr.NextPart()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			var tooBig *http.MaxBytesError
			if errors.As(err, &tooBig) {
				apiError(w, http.StatusRequestEntityTooLarge, "the upload is over %d bytes", maxUploadBody)
			} else {
				apiError(w, http.StatusBadRequest, "bad multipart body: %s", err)
			}
			return
		}
		name := part.FormName()
		if name == "file" && path == "" {
			filename = filepath.Base(part.FileName())
			path, sum, size, created, err = saveUpload(hp.p.Home(), filename, part)
			if err != nil {
				var tooBig *http.MaxBytesError
				var bad *BadInputError
				switch {
				case errors.As(err, &tooBig):
					apiError(w, http.StatusRequestEntityTooLarge, "the upload is over %d bytes", maxUploadBody)
				case errors.As(err, &bad):
					apiError(w, http.StatusBadRequest, "%s", bad.Msg)
				default:
					apiError(w, http.StatusInternalServerError, "cannot keep the file: %s", err)
				}
				return
			}
			continue
		}
		v, err := io.ReadAll(io.LimitReader(part, maxField+1))
		if err != nil {
			apiError(w, http.StatusBadRequest, "bad multipart body: %s", err)
			return
		}
		if len(v) > maxField {
			apiError(w, http.StatusBadRequest, "form field %q is over %d bytes", name, maxField)
			return
		}
		fields[name] = string(v)
	}
	if path == "" {
		apiError(w, http.StatusBadRequest, "no file: send it in the form field \"file\"")
		return
	}
	mt, err := waphone.DetectMIME(path)
	if err != nil {
		apiError(w, http.StatusBadRequest, "%s", err)
		return
	}
	typ := fields["type"]
	if typ == "" {
		typ = mediaTypeFor(mt, size)
	}
	if !slices.Contains(media.Names(), typ) {
		apiError(w, http.StatusBadRequest, "type %q: want one of %s", typ, strings.Join(media.Names(), ", "))
		return
	}
	rec := Record{Kind: "message", Dir: "out", Chat: chat, Type: typ, At: time.Now().UnixMilli(), File: filepath.Base(path),
		MimeType: mt, Caption: fields["caption"], Size: size, SHA256: sum}
	if typ == "document" {
		rec.Filename = filename
	}
	if fields["reply_to"] != "" {
		rec.Context = &waphone.Context{ID: fields["reply_to"]}
	}
	id, err := hp.p.SendMediaReply(r.Context(), chat, path, typ, rec.Caption, rec.Filename, fields["reply_to"], "")
	keep = err == nil
	s.sent(w, hp, rec, id, err)
}

// maxField bounds a form field of an upload other than the file.
const maxField = 4 << 10

// mediaTypeFor is the message type a customer's file of type mt and size
// goes as: the media type that takes it, else a document.
func mediaTypeFor(mt string, size int64) string {
	for _, k := range media.Kinds {
		if !k.Filename && slices.Contains(k.MIME, mt) && size <= k.Max {
			return k.Name
		}
	}
	return "document"
}

// saveUpload writes an uploaded file to the phone's sent/ under its
// SHA-256 and returns the path, hash and size, and whether it made the file
// (false: an earlier message sent the same bytes).
func saveUpload(home, filename string, r io.Reader) (path, sum string, size int64, created bool, err error) {
	dir := filepath.Join(home, sentDir)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", "", 0, false, err
	}
	tmp, err := os.CreateTemp(dir, ".upload-*")
	if err != nil {
		return "", "", 0, false, err
	}
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	hash := sha256.New()
	size, err = io.Copy(io.MultiWriter(tmp, hash), r)
	if err != nil {
		return "", "", 0, false, err
	}
	if size == 0 {
		err = &BadInputError{"the file is empty"}
		return "", "", 0, false, err
	}
	if err = tmp.Close(); err != nil {
		return "", "", 0, false, err
	}
	sum = hex.EncodeToString(hash.Sum(nil))
	path = filepath.Join(dir, sum+waphone.Extension("", filename))
	if _, serr := os.Stat(path); serr == nil {
		os.Remove(tmp.Name()) // the same bytes are there already
		return path, sum, size, false, nil
	}
	if err = os.Rename(tmp.Name(), path); err != nil {
		return "", "", 0, false, err
	}
	return path, sum, size, true, nil
}

func (s *Server) readChat(w http.ResponseWriter, r *http.Request) {
	hp, ok := s.hosted(w, r)
	if !ok {
		return
	}
	chat, ok := chatOf(w, r)
	if !ok {
		return
	}
	n := 0
	for _, rec := range hp.h.chat(chat, maxKept) {
		if rec.Kind != "message" || rec.Dir != "in" {
			continue
		}
		hp.mu.Lock()
		done := hp.read[rec.ID]
		hp.read[rec.ID] = true
		hp.mu.Unlock()
		if done {
			continue
		}
		if err := hp.p.Read(r.Context(), rec.ID); err != nil {
			s.log.Warn("read receipt", "id", rec.ID, "err", err)
			continue
		}
		hp.h.add(Record{Kind: "read", Chat: chat, ID: rec.ID, At: time.Now().UnixMilli()})
		n++
	}
	writeJSON(w, http.StatusOK, map[string]any{"read": n})
}

func (s *Server) choose(w http.ResponseWriter, r *http.Request) {
	hp, ok := s.hosted(w, r)
	if !ok {
		return
	}
	var b struct {
		Choice string `json:"choice"`
		Title  string `json:"title"`
	}
	if !decode(w, r, &b) {
		return
	}
	target := r.PathValue("id")
	orig, found := hp.h.find(target)
	if !found || orig.Dir != "in" {
		apiError(w, http.StatusNotFound, "no received message %q", target)
		return
	}
	if b.Choice == "" || utf8.RuneCountInString(b.Choice) > maxTitle || utf8.RuneCountInString(b.Title) > maxTitle {
		apiError(w, http.StatusBadRequest, "choice: 1 to %d characters (title at most %d)", maxTitle, maxTitle)
		return
	}
	if b.Title == "" {
		b.Title = b.Choice
	}
	id, err := hp.p.Choose(r.Context(), target, b.Choice)
	rec := Record{Kind: "message", Dir: "out", Chat: orig.Chat, Type: "reply", Text: b.Title, At: time.Now().UnixMilli(),
		Context: &waphone.Context{ID: target, From: orig.Chat}}
	s.sent(w, hp, rec, id, err)
}

// cachedProfile answers what the phone last saw of the chat's profile
// (POST asks the network again).
func (s *Server) cachedProfile(w http.ResponseWriter, r *http.Request) {
	hp, ok := s.hosted(w, r)
	if !ok {
		return
	}
	chat, ok := chatOf(w, r)
	if !ok {
		return
	}
	hp.mu.Lock()
	pr, seen := hp.profiles[chat]
	hp.mu.Unlock()
	if !seen {
		pr = Profile{Number: chat}
	}
	writeJSON(w, http.StatusOK, pr)
}

func (s *Server) profile(w http.ResponseWriter, r *http.Request) {
	hp, ok := s.hosted(w, r)
	if !ok {
		return
	}
	chat, ok := chatOf(w, r)
	if !ok {
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), profileTimeout)
	defer cancel()
	pr, err := hp.refreshProfile(ctx, chat)
	if err != nil {
		apiError(w, http.StatusBadGateway, "%s", err)
		return
	}
	writeJSON(w, http.StatusOK, pr)
}

// refreshProfile asks the network for chat's profile, keeps it and its
// photo, and adds a system line to the chat when what the customer sees
// changed since the last look.
func (hp *hosted) refreshProfile(ctx context.Context, chat string) (Profile, error) {
	np, err := hp.p.Profile(ctx, chat)
	if err != nil {
		return Profile{}, err
	}
	pr := Profile{Number: chat, Name: np.Name, About: np.About, Business: np.Business}
	if np.Photo != nil {
		pr.Photo = np.PhotoSHA256 + waphone.Extension(np.PhotoMime, "")
		path := filepath.Join(hp.p.Home(), "media", pr.Photo)
		if _, err := os.Stat(path); err != nil {
			if err := writeFileAtomic(path, np.Photo); err != nil {
				return Profile{}, err
			}
		}
	}
	hp.mu.Lock()
	old, seen := hp.profiles[chat]
	hp.profiles[chat] = pr
	err = hp.saveProfilesLocked()
	hp.mu.Unlock()
	if err != nil {
		return Profile{}, err
	}
	if seen {
		var what []string
		if old.Name != pr.Name {
			what = append(what, "name")
		}
		if old.About != pr.About {
			what = append(what, "about")
		}
		if old.Photo != pr.Photo {
			what = append(what, "photo")
		}
		if !bytes.Equal(compactJSON(old.Business), compactJSON(pr.Business)) {
			what = append(what, "business info")
		}
		if len(what) > 0 {
			name := pr.Name
			if name == "" {
				name = chat
			}
			hp.h.add(Record{Kind: "system", Chat: chat, At: time.Now().UnixMilli(),
				Text: fmt.Sprintf("%s changed its %s.", name, joinAnd(what))})
		}
	}
	return pr, nil
}

func compactJSON(b json.RawMessage) []byte {
	var buf bytes.Buffer
	if json.Compact(&buf, b) != nil {
		return b
	}
	return buf.Bytes()
}

// joinAnd joins "a", "b", "c" as "a, b and c".
func joinAnd(s []string) string {
	if len(s) == 1 {
		return s[0]
	}
	return strings.Join(s[:len(s)-1], ", ") + " and " + s[len(s)-1]
}

func (s *Server) file(w http.ResponseWriter, r *http.Request) {
	hp, ok := s.hosted(w, r)
	if !ok {
		return
	}
	name := r.PathValue("name")
	if !fileName.MatchString(name) {
		apiError(w, http.StatusNotFound, "no file %q", name)
		return
	}
	for _, dir := range []string{"media", sentDir} {
		path := filepath.Join(hp.p.Home(), dir, name)
		f, err := os.Open(path)
		if err != nil {
			continue
		}
		defer f.Close()
		fi, err := f.Stat()
		if err != nil {
			break
		}
		mt, err := waphone.DetectMIME(path)
		if err != nil {
			mt = "application/octet-stream"
		}
		h := w.Header()
		h.Set("Content-Type", mt)
		// A received file is the business's content: never run it as a page.
		h.Set("Content-Security-Policy", "sandbox")
		h.Set("Cache-Control", "private, max-age=31536000, immutable")
		if dl := r.URL.Query().Get("download"); dl != "" {
			h.Set("Content-Disposition", mime.FormatMediaType("attachment", map[string]string{"filename": dl}))
		}
		http.ServeContent(w, r, "", fi.ModTime(), f)
		return
	}
	apiError(w, http.StatusNotFound, "no file %q", name)
}

// events streams the phone's new records as server-sent events ("record"
// events, the Record as JSON; id is its seq), until the client goes.
func (s *Server) events(w http.ResponseWriter, r *http.Request) {
	hp, ok := s.hosted(w, r)
	if !ok {
		return
	}
	rc := http.NewResponseController(w)
	ch := hp.h.subscribe()
	defer hp.h.unsubscribe(ch)
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	w.WriteHeader(http.StatusOK)
	fmt.Fprint(w, ": open\n\n")
	if err := rc.Flush(); err != nil {
		return
	}
	tick := time.NewTicker(heartbeat)
	defer tick.Stop()
	for {
		select {
		case <-r.Context().Done():
			return
		case <-tick.C:
			fmt.Fprint(w, ": ping\n\n")
		case rec, ok := <-ch:
			if !ok {
				return // fell behind, or the phone stopped: the page reloads
			}
			b, _ := json.Marshal(rec)
			fmt.Fprintf(w, "id: %d\nevent: record\ndata: %s\n\n", rec.Seq, b)
		}
		if err := rc.Flush(); err != nil {
			return
		}
	}
}

// writeFileAtomic writes b to path through a temporary file renamed over
// it, so that a crash never leaves a part of it under its name.
func writeFileAtomic(path string, b []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), ".tmp-*")
	if err != nil {
		return err
	}
	_, err = tmp.Write(b)
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), path)
	}
	if err != nil {
		os.Remove(tmp.Name())
	}
	return err
}
