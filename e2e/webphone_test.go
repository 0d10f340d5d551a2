package e2e

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/openwaba/openwaba/e2e/stack"
)

// webPhone runs `waphone serve` for the stack on a free loopback port with
// its phones in dir, and waits until it answers.
func webPhone(t *testing.T, s *stack.Stack, dir string, port int) (*stack.Proc, string) {
	t.Helper()
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	p := stack.Start(t, s.Bins, "waphone", nil, "--network", strings.Join(s.ChatAddrs(), ","), "--admin", s.AdminAddr(),
		"--root-key", s.RootKey, "serve", "--dir", dir, "--listen", addr)
	base := "http://" + addr
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get(base + "/api/phones")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return p, base
			}
		}
		if time.Now().After(deadline) || p.Exited() {
			t.Fatalf("the web phone does not answer at %s: %v\n%s", base, err, p.Log())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// bubbleJS is a JavaScript expression describing the bubble of message id
// (null while it is not shown): what a test asserts on.
func bubbleJS(id string) string {
	return fmt.Sprintf(`(() => {
  const b = document.querySelector('.bubble[data-id=%q]');
  if (!b) return null;
  const q = (s) => b.querySelector(s);
  const txt = (s) => { const e = q(s); return e ? e.textContent : null; };
  const all = (s) => [...b.querySelectorAll(s)].map((e) => e.textContent);
  const img = q('img.media');
  return {
    dir: b.dataset.dir, type: b.dataset.type, text: txt('.text'), caption: txt('.caption'),
    quote: q('.quote') ? q('.quote').dataset.quoteId : null,
    ticks: q('.ticks') ? q('.ticks').dataset.status : null,
    reactions: all('.reaction'),
    img: img ? {src: img.getAttribute('src'), loaded: img.complete && img.naturalWidth > 0, width: img.naturalWidth} : null,
    audio: q('audio') ? q('audio').getAttribute('src') : null,
    video: q('video') ? q('video').getAttribute('src') : null,
    doc: q('.document') ? {name: txt('.doc-name'), size: txt('.doc-size'), href: q('.doc-download').getAttribute('href')} : null,
    loc: q('.location') ? {name: txt('.loc-name'), address: txt('.loc-address'), coords: txt('.coords')} : null,
    contacts: all('.contact-name'), contactPhones: all('.contact-phone'),
    tpl: q('.template') ? {header: txt('.tpl-header'), body: txt('.tpl-body'), footer: txt('.tpl-footer'), buttons: all('.tpl-button')} : null,
    int: q('.interactive') ? {header: txt('.int-header'), body: txt('.int-body'), footer: txt('.int-footer'), buttons: all('.int-button'),
      list: q('.list-open') ? q('.list-open').textContent : null, rows: all('.row-title'), sections: all('.section-title')} : null,
  };
})()`, id)
}

type bubbleView struct {
	Dir, Type, Quote, Ticks, Audio, Video string
	Text, Caption                         *string
	Reactions                             []string
	Img                                   *struct {
		Src    string
		Loaded bool
		Width  int
	}
	Doc           *struct{ Name, Size, Href string }
	Loc           *struct{ Name, Address, Coords string }
	Contacts      []string
	ContactPhones []string
	Tpl           *struct {
		Header, Body, Footer string
		Buttons              []string
	}
	Int *struct {
		Header, Body, Footer string
		Buttons              []string
		List                 *string
		Rows, Sections       []string
	}
}

// bubble waits until the bubble of id satisfies ok and returns it.
func bubble(t *testing.T, b *stack.Browser, id, what string, ok func(bubbleView) bool) bubbleView {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	var v bubbleView
	for {
		var raw json.RawMessage
		b.Eval(bubbleJS(id), &raw)
		if string(raw) != "null" {
			v = bubbleView{}
			if err := json.Unmarshal(raw, &v); err != nil {
				t.Fatal(err)
			}
			if ok(v) {
				return v
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("the web phone does not show %s (message %s) as expected; it shows %s; console errors %q", what, id, raw, b.Errors())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func str(p *string) string {
	if p == nil {
		return ""
	}
	return *p
}

// inboundOf waits for the inbound webhook message that cond picks and
// returns it as raw JSON with its id.
func inboundOf(t *testing.T, hook *stack.Webhook, what string, cond func(m map[string]any) bool) map[string]any {
	t.Helper()
	var found map[string]any
	hook.Wait(60*time.Second, what, func([]stack.Payload) bool {
		for _, p := range hook.Posts() {
			var body struct {
				Messages []map[string]any `json:"messages"`
			}
			json.Unmarshal(p.Body, &body)
			for _, m := range body.Messages {
				if cond(m) {
					found = m
					return true
				}
			}
		}
		return false
	})
	return found
}

// TestWebPhone: the web phone in a real headless Chromium. A customer
// phone is created in the page; the business sends every message type
// through the API and each appears as WhatsApp shows it; the customer
// answers a button, a template and a list, reacts, replies, shares a
// location, a contact and an image (the business downloads the same
// bytes); ticks turn blue when the business reads; reloads and a restart
// of the web phone keep the history; a screenshot is saved; and the page
// logs no console error at any point.
func TestWebPhone(t *testing.T) {
	s := stack.New(t, stack.Options{ChatdEnv: map[string]string{"WA_SANDBOX_TEMPLATE_APPROVAL_DELAY": "1s"}})
	tok := s.Login()
	s.Register(tok, bizCC, bizPhone)
	s.WaitHealth(tok, "connected", 30*time.Second)
	hook := stack.NewWebhook(t)
	if r := s.Do("PATCH", "/v1/settings/application", bearer(tok), map[string]any{
		"webhooks": map[string]any{"url": hook.URL, "message": map[string]bool{"sent": true, "delivered": true, "read": true}},
	}); r.Status != 200 {
		t.Fatalf("PATCH settings = %d %s", r.Status, r.Raw)
	}
	photo := parcelPNG(t, 640, 640)
	if code, _, body := s.Raw("POST", "/v1/settings/profile/photo", bearer(tok), "image/png", photo); code != 201 {
		t.Fatalf("POST photo = %d %s", code, body)
	}
	if r := s.Do("PATCH", "/v1/settings/profile/about", bearer(tok), map[string]any{"text": "Tea, all day"}); r.Status != 200 {
		t.Fatalf("PATCH about = %d %s", r.Status, r.Raw)
	}
	if r := s.Do("POST", "/v1/settings/business/profile", bearer(tok), map[string]any{"description": "We sell tea", "vertical": "RETAIL"}); r.Status != 200 {
		t.Fatalf("POST business profile = %d %s", r.Status, r.Raw)
	}
	if code, _, raw := s.Raw("POST", "/v1/configs/templates", bearer(tok), "application/json", []byte(orderTemplate)); code != 201 {
		t.Fatalf("POST template = %d %s", code, raw)
	}
	hook.Wait(30*time.Second, "the template's approval", func(ps []stack.Payload) bool { ts, _ := stack.TemplateStatuses(ps); return len(ts) >= 1 })
	ns, _ := s.Do("GET", "/v1/configs/templates", bearer(tok), nil).Body["namespace"].(string)

	dir := t.TempDir()
	port := stack.FreePort(t)
	wp, base := webPhone(t, s, dir, port)
	b := stack.NewBrowser(t, 480, 1000)
	const customer = "15551234567"

	// Create the phone in the page; its chat list opens.
	b.Do(chromedp.Navigate(base + "/"))
	b.Wait(10*time.Second, "the phones page", `!document.querySelector('#view-phones').hidden`, nil)
	b.Eval(`(() => { const f = document.querySelector('#new-phone');
	  f.elements.number.value = '+`+customer+`'; f.elements.namedItem('name').value = 'Kerry'; f.requestSubmit(); return true; })()`, nil)
	b.Wait(40*time.Second, "the chat list of the new phone", `location.pathname === '/phones/`+customer+`' && !document.querySelector('#view-chats').hidden`, nil)
	var phones []string
	b.Eval(`fetch('/api/phones').then(r => r.json()).then(j => j.phones.map(p => p.number + ' ' + p.name + ' ' + p.online))`, &phones)
	if len(phones) != 1 || !strings.HasPrefix(phones[0], customer+" Kerry") {
		t.Fatalf("GET /api/phones = %v, want the phone just created", phones)
	}

	// The customer opens a chat with the business and writes first.
	b.Eval(`(() => { const f = document.querySelector('#new-chat'); f.elements.number.value = '`+bizWaID+`'; f.requestSubmit(); return true; })()`, nil)
	b.Wait(10*time.Second, "the chat", `location.pathname === '/phones/`+customer+`/chats/`+bizWaID+`' && !document.querySelector('#view-chat').hidden`, nil)
	b.Wait(30*time.Second, "the business's name, about and photo in the chat header",
		`document.querySelector('#chat-header .name').textContent === 'Acme Shop' && document.querySelector('#chat-header .about').textContent === 'Tea, all day' && document.querySelector('#chat-header img.photo').naturalWidth === 640`, nil)
	b.Wait(5*time.Second, "the business info", `document.querySelector('#business dl').textContent.includes('We sell tea')`, nil)
	b.Eval(`(() => { document.querySelector('#text').value = 'Hi, is my order on its way?'; document.querySelector('#composer').requestSubmit(); return true; })()`, nil)
	first := inboundOf(t, hook, "the customer's first text", func(m map[string]any) bool {
		return m["type"] == "text" && dig(m, "text", "body") == "Hi, is my order on its way?"
	})
	firstID := first["id"].(string)
	if first["from"] != customer {
		t.Errorf("the first message came from %v, want %s", first["from"], customer)
	}
	bubble(t, b, firstID, "the customer's text, delivered", func(v bubbleView) bool {
		return v.Dir == "out" && str(v.Text) == "Hi, is my order on its way?" && v.Ticks == "delivered"
	})

	// The business sends every type.
	imageID := s.Upload(bearer(tok), "image/png", parcelPNG(t, 320, 200))
	audio, video := randomFile(20_000), randomFile(50_000)
	// A real WebP for the sticker: the browser encodes one.
	var webp64 string
	b.Eval(`(() => { const c = document.createElement('canvas'); c.width = c.height = 128; const x = c.getContext('2d');
	  x.fillStyle = '#f4d03f'; x.beginPath(); x.arc(64, 64, 60, 0, 7); x.fill(); return c.toDataURL('image/webp').split(',')[1]; })()`, &webp64)
	sticker, err := base64.StdEncoding.DecodeString(webp64)
	if err != nil || !bytes.HasPrefix(sticker, []byte("RIFF")) || !bytes.Contains(sticker[:16], []byte("WEBP")) {
		t.Fatalf("the browser's WebP: %v %q", err, sticker[:min(16, len(sticker))])
	}
	pdf := append([]byte("%PDF-1.4\n"), randomFile(30_000)...)
	ids := map[string]string{}
	sendAs := func(name string, body map[string]any) {
		body["to"] = customer
		ids[name] = send(t, s, tok, body)
	}
	sendAs("text", map[string]any{"type": "text", "text": map[string]any{"body": "Yes! It ships today."}, "context": map[string]string{"message_id": firstID}})
	sendAs("image", map[string]any{"type": "image", "image": map[string]any{"id": imageID, "caption": "Your parcel"}})
	sendAs("audio", map[string]any{"type": "audio", "audio": map[string]any{"id": s.Upload(bearer(tok), "audio/ogg", audio)}})
	sendAs("video", map[string]any{"type": "video", "video": map[string]any{"id": s.Upload(bearer(tok), "video/mp4", video), "caption": "Packing it"}})
	sendAs("document", map[string]any{"type": "document", "document": map[string]any{"id": s.Upload(bearer(tok), "application/pdf", pdf), "filename": "invoice-42.pdf"}})
	sendAs("sticker", map[string]any{"type": "sticker", "sticker": map[string]any{"id": s.Upload(bearer(tok), "image/webp", sticker)}})
	sendAs("location", map[string]any{"type": "location", "location": map[string]any{"latitude": 37.4847, "longitude": -122.1477, "name": "Acme HQ", "address": "1 Hacker Way"}})
	sendAs("contacts", map[string]any{"type": "contacts", "contacts": []any{map[string]any{"name": map[string]string{"formatted_name": "Ann Support", "first_name": "Ann"},
		"phones": []any{map[string]string{"phone": "+1 555 0100", "type": "WORK"}}}}})
	sendAs("template", orderMessage(customer, ns, "Kerry"))
	sendAs("buttons", map[string]any{"type": "interactive", "interactive": json.RawMessage(`{"type":"button","header":{"type":"text","text":"Delivery"},` +
		`"body":{"text":"Shall we ship today?"},"footer":{"text":"Acme Shop"},"action":{"buttons":[{"type":"reply","reply":{"id":"ship-now","title":"Yes, ship it"}},{"type":"reply","reply":{"id":"ship-later","title":"Tomorrow"}}]}}`)})
	sendAs("list", map[string]any{"type": "interactive", "interactive": json.RawMessage(`{"type":"list","header":{"type":"text","text":"Sizes"},"body":{"text":"Pick a size"},` +
		`"action":{"button":"Choose","sections":[{"title":"Small","rows":[{"id":"xs","title":"XS","description":"extra small"},{"id":"s","title":"S"}]},{"title":"Large","rows":[{"id":"l","title":"L"}]}]}}`)})
	sendAs("reaction", map[string]any{"type": "reaction", "reaction": map[string]string{"message_id": firstID, "emoji": "❤️"}})

	v := bubble(t, b, ids["text"], "a text replying to the customer", func(v bubbleView) bool { return str(v.Text) == "Yes! It ships today." })
	if v.Dir != "in" || v.Quote != firstID {
		t.Errorf("the reply shows %+v, want it in, quoting %s", v, firstID)
	}
	v = bubble(t, b, ids["image"], "the image", func(v bubbleView) bool { return v.Img != nil && v.Img.Loaded })
	if v.Img.Width != 320 || str(v.Caption) != "Your parcel" {
		t.Errorf("the image shows %+v (caption %q), want 320 px wide with its caption", v.Img, str(v.Caption))
	}
	// The players play the files the business sent.
	hashOf := func(src string) string {
		t.Helper()
		var h string
		b.Eval(`fetch(`+strconv.Quote(src)+`).then((r) => r.arrayBuffer()).then((a) => crypto.subtle.digest('SHA-256', a))
		  .then((d) => [...new Uint8Array(d)].map((x) => x.toString(16).padStart(2, '0')).join(''))`, &h)
		return h
	}
	v = bubble(t, b, ids["audio"], "the audio player", func(v bubbleView) bool { return v.Audio != "" })
	if got := hashOf(v.Audio); got != sha(audio) {
		t.Errorf("the audio player's file hashes to %s, want the business's %s", got, sha(audio))
	}
	v = bubble(t, b, ids["video"], "the video player", func(v bubbleView) bool { return v.Video != "" && str(v.Caption) == "Packing it" })
	if got := hashOf(v.Video); got != sha(video) {
		t.Errorf("the video player's file hashes to %s, want the business's %s", got, sha(video))
	}
	v = bubble(t, b, ids["document"], "the document", func(v bubbleView) bool { return v.Doc != nil })
	if v.Doc.Name != "invoice-42.pdf" || v.Doc.Size != "29.3 KB" || !strings.Contains(v.Doc.Href, "download=invoice-42.pdf") {
		t.Errorf("the document shows %+v, want its name, size and a download", v.Doc)
	}
	resp, err := http.Get(base + v.Doc.Href)
	if err != nil {
		t.Fatal(err)
	}
	var got bytes.Buffer
	got.ReadFrom(resp.Body)
	resp.Body.Close()
	if !bytes.Equal(got.Bytes(), pdf) || !strings.Contains(resp.Header.Get("Content-Disposition"), "invoice-42.pdf") {
		t.Errorf("the document's download: %d bytes, %q; want the file sent", got.Len(), resp.Header.Get("Content-Disposition"))
	}
	bubble(t, b, ids["sticker"], "the sticker, decoded", func(v bubbleView) bool {
		return v.Type == "sticker" && v.Img != nil && v.Img.Loaded && v.Img.Width == 128
	})
	v = bubble(t, b, ids["location"], "the location", func(v bubbleView) bool { return v.Loc != nil })
	if v.Loc.Name != "Acme HQ" || v.Loc.Address != "1 Hacker Way" || v.Loc.Coords != "37.484700, -122.147700" {
		t.Errorf("the location shows %+v", v.Loc)
	}
	v = bubble(t, b, ids["contacts"], "the contact card", func(v bubbleView) bool { return len(v.Contacts) == 1 })
	if !strings.Contains(v.Contacts[0], "Ann Support") || len(v.ContactPhones) != 1 || !strings.Contains(v.ContactPhones[0], "+1 555 0100") {
		t.Errorf("the contact card shows %v %v", v.Contacts, v.ContactPhones)
	}
	v = bubble(t, b, ids["template"], "the template", func(v bubbleView) bool { return v.Tpl != nil })
	if v.Tpl.Header != "Order 42" || v.Tpl.Body != "Hi Kerry, your order 42 ships on Monday, May 4." || v.Tpl.Footer != "Acme Shop" ||
		!slices.Equal(v.Tpl.Buttons, []string{"Thanks", "Stop updates", "↗ Track"}) {
		t.Errorf("the template shows %+v", v.Tpl)
	}
	v = bubble(t, b, ids["buttons"], "the buttons", func(v bubbleView) bool { return v.Int != nil })
	if v.Int.Header != "Delivery" || v.Int.Body != "Shall we ship today?" || v.Int.Footer != "Acme Shop" || !slices.Equal(v.Int.Buttons, []string{"Yes, ship it", "Tomorrow"}) {
		t.Errorf("the buttons message shows %+v", v.Int)
	}
	v = bubble(t, b, ids["list"], "the list", func(v bubbleView) bool { return v.Int != nil })
	if str(v.Int.List) != "☰ Choose" || !slices.Equal(v.Int.Rows, []string{"XS", "S", "L"}) || !slices.Equal(v.Int.Sections, []string{"Small", "Large"}) {
		t.Errorf("the list shows %+v", v.Int)
	}
	bubble(t, b, firstID, "the business's reaction under the customer's message", func(v bubbleView) bool { return slices.Equal(v.Reactions, []string{"❤️"}) })

	// The chat is open: the customer has read everything (blue ticks on
	// the business's side).
	hook.Wait(60*time.Second, "read statuses of what the chat shows", func(ps []stack.Payload) bool {
		return slices.Contains(stack.StatusesOf(ps, ids["text"]), "read") && slices.Contains(stack.StatusesOf(ps, ids["list"]), "read")
	})

	// The business reads the customer's message: the ticks turn blue.
	if r := s.Do("PUT", "/v1/messages/"+firstID, bearer(tok), map[string]string{"status": "read"}); r.Status != 200 {
		t.Fatalf("PUT /v1/messages/%s = %d %s", firstID, r.Status, r.Raw)
	}
	bubble(t, b, firstID, "blue ticks", func(v bubbleView) bool { return v.Ticks == "read" })
	var color string
	b.Eval(`getComputedStyle(document.querySelector('.bubble[data-id="`+firstID+`"] .ticks')).color`, &color)
	if color != "rgb(83, 189, 235)" {
		t.Errorf("read ticks are %s, want blue", color)
	}

	// Taps: a reply button, a template quick reply, a list row.
	click := func(sel string) {
		t.Helper()
		b.Wait(10*time.Second, sel, `document.querySelector(`+strconv.Quote(sel)+`)`, nil)
		b.Eval(`(() => { document.querySelector(`+strconv.Quote(sel)+`).click(); return true; })()`, nil)
	}
	click(`.bubble[data-id="` + ids["buttons"] + `"] .int-button[data-choice="ship-now"]`)
	m := inboundOf(t, hook, "the button reply", func(m map[string]any) bool { return m["type"] == "interactive" })
	if dig(m, "interactive", "type") != "button_reply" || dig(m, "interactive", "button_reply", "id") != "ship-now" || dig(m, "context", "id") != ids["buttons"] {
		t.Errorf("the button tap reached the webhook as %v", m)
	}
	click(`.bubble[data-id="` + ids["template"] + `"] .tpl-button.quick-reply[data-payload="THANKS-42"]`)
	m = inboundOf(t, hook, "the template's quick reply", func(m map[string]any) bool { return m["type"] == "button" })
	if dig(m, "button", "payload") != "THANKS-42" || dig(m, "button", "text") != "Thanks" || dig(m, "context", "id") != ids["template"] {
		t.Errorf("the quick reply reached the webhook as %v", m)
	}
	click(`.bubble[data-id="` + ids["list"] + `"] .list-open`)
	b.Wait(5*time.Second, "the list's rows", `!document.querySelector('.bubble[data-id="`+ids["list"]+`"] .list-rows').hidden`, nil)
	click(`.bubble[data-id="` + ids["list"] + `"] .list-row[data-choice="l"]`)
	m = inboundOf(t, hook, "the list reply", func(m map[string]any) bool { return dig(m, "interactive", "type") == "list_reply" })
	if dig(m, "interactive", "list_reply", "id") != "l" || dig(m, "interactive", "list_reply", "title") != "L" {
		t.Errorf("the list tap reached the webhook as %v", m)
	}

	// The customer reacts to the business's text and replies to its image.
	click(`.bubble[data-id="` + ids["text"] + `"] .act-react`)
	click(`#emoji-picker button[data-emoji="👍"]`)
	m = inboundOf(t, hook, "the customer's reaction", func(m map[string]any) bool { return m["type"] == "reaction" })
	if dig(m, "reaction", "message_id") != ids["text"] || dig(m, "reaction", "emoji") != "👍" {
		t.Errorf("the reaction reached the webhook as %v", m)
	}
	bubble(t, b, ids["text"], "the customer's reaction", func(v bubbleView) bool { return slices.Contains(v.Reactions, "👍") })
	click(`.bubble[data-id="` + ids["image"] + `"] .act-reply`)
	b.Eval(`(() => { document.querySelector('#text').value = 'Lovely box'; document.querySelector('#composer').requestSubmit(); return true; })()`, nil)
	m = inboundOf(t, hook, "the customer's reply", func(m map[string]any) bool { return dig(m, "text", "body") == "Lovely box" })
	if dig(m, "context", "id") != ids["image"] {
		t.Errorf("the reply reached the webhook as %v, want context %s", m, ids["image"])
	}

	// A location and a contact, through their dialogs.
	click(`#location-btn`)
	b.Eval(`(() => { const f = document.querySelector('#location-dialog form');
	  f.elements.latitude.value = '51.5007'; f.elements.longitude.value = '-0.1246'; f.elements.namedItem('name').value = 'Big Ben'; f.elements.address.value = 'London';
	  f.querySelector('button[value=send]').click(); return true; })()`, nil)
	m = inboundOf(t, hook, "the shared location", func(m map[string]any) bool { return m["type"] == "location" })
	if dig(m, "location", "name") != "Big Ben" || dig(m, "location", "latitude") != 51.5007 || dig(m, "location", "longitude") != -0.1246 {
		t.Errorf("the location reached the webhook as %v", m)
	}
	click(`#contact-btn`)
	b.Eval(`(() => { const f = document.querySelector('#contact-dialog form');
	  f.elements.namedItem('name').value = 'Sam Doe'; f.elements.phone.value = '+44 20 7946 0000';
	  f.querySelector('button[value=send]').click(); return true; })()`, nil)
	m = inboundOf(t, hook, "the shared contact", func(m map[string]any) bool { return m["type"] == "contacts" })
	if cs, _ := m["contacts"].([]any); len(cs) != 1 || dig(cs[0].(map[string]any), "name", "formatted_name") != "Sam Doe" {
		t.Errorf("the contact reached the webhook as %v", m)
	}

	// An image from the customer: the business downloads the same bytes.
	upload := pngOf(t, 200, 150)
	path := filepath.Join(t.TempDir(), "receipt.png")
	if err := os.WriteFile(path, upload, 0o600); err != nil {
		t.Fatal(err)
	}
	b.Do(chromedp.SetUploadFiles(chromedp.CSS("#attach"), []string{path}))
	m = inboundOf(t, hook, "the customer's image", func(m map[string]any) bool { return m["type"] == "image" })
	mid, _ := dig(m, "image", "id").(string)
	if code, _, body := s.Raw("GET", "/v1/media/"+mid, bearer(tok), "", nil); code != 200 || !bytes.Equal(body, upload) {
		t.Errorf("GET /v1/media/%s = %d, %d bytes; want the %d bytes the customer sent", mid, code, len(body), len(upload))
	}
	imgOut := m["id"].(string)
	bubble(t, b, imgOut, "the customer's image", func(v bubbleView) bool { return v.Dir == "out" && v.Img != nil && v.Img.Loaded && v.Img.Width == 200 })

	// A reload keeps the history.
	var before int
	b.Eval(`document.querySelectorAll('#messages .bubble').length`, &before)
	b.Do(chromedp.Reload())
	b.Wait(20*time.Second, "the history after a reload", fmt.Sprintf(`document.querySelectorAll('#messages .bubble').length === %d`, before), nil)
	bubble(t, b, firstID, "blue ticks after a reload", func(v bubbleView) bool { return v.Ticks == "read" && slices.Equal(v.Reactions, []string{"❤️"}) })

	// A restart of the web phone keeps its phones and their history, and
	// the phone is online again.
	b.Do(chromedp.Navigate("about:blank")) // no page reconnecting to a stopped server
	wp.Stop()
	_, base2 := webPhone(t, s, dir, port)
	if base2 != base {
		t.Fatal(base2)
	}
	b.Do(chromedp.Navigate(base + "/phones/" + customer + "/chats/" + bizWaID))
	b.Wait(30*time.Second, "the history after a restart", fmt.Sprintf(`document.querySelectorAll('#messages .bubble').length === %d`, before), nil)
	after := send(t, s, tok, map[string]any{"to": customer, "type": "text", "text": map[string]any{"body": "Still here?"}})
	bubble(t, b, after, "a message after the restart, live", func(v bubbleView) bool { return str(v.Text) == "Still here?" })
	b.Do(chromedp.Navigate(base + "/phones/" + customer))
	b.Wait(20*time.Second, "the chat list with the business's name and photo",
		`(() => { const li = document.querySelector('li.chat[data-number="`+bizWaID+`"]'); return li && li.querySelector('.chat-name').textContent === 'Acme Shop' && li.querySelector('img.chat-photo') && li.querySelector('img.chat-photo').naturalWidth === 640; })()`, nil)

	// A system line when the business changes what the customer sees.
	if r := s.Do("PATCH", "/v1/settings/profile/about", bearer(tok), map[string]any{"text": "Tea and cake"}); r.Status != 200 {
		t.Fatalf("PATCH about = %d %s", r.Status, r.Raw)
	}
	b.Do(chromedp.Navigate(base + "/phones/" + customer + "/chats/" + bizWaID))
	b.Wait(30*time.Second, "a system line for the new about text",
		`[...document.querySelectorAll('#messages .system')].some((e) => e.textContent === 'Acme Shop changed its about.') && document.querySelector('#chat-header .about').textContent === 'Tea and cake'`, nil)

	// The screenshot for README: a second customer's chat with a template,
	// a list and an image.
	shot := webPhoneScreenshot(t, s, tok, b, base, ns, imageID)
	out := os.Getenv("WEBPHONE_SCREENSHOT")
	if out == "" {
		out = filepath.Join(t.TempDir(), "webphone.png")
	}
	if err := os.WriteFile(out, shot, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot: %s (%d bytes)", out, len(shot))

	if errs := b.Errors(); len(errs) > 0 {
		t.Errorf("the page logged %d console errors: %q", len(errs), errs)
	}
}

// webPhoneScreenshot makes a second phone through the JSON API (as a
// script would), has the business send it a template, a list and an
// image, and returns a PNG of the conversation.
func webPhoneScreenshot(t *testing.T, s *stack.Stack, tok string, b *stack.Browser, base, ns, imageID string) []byte {
	t.Helper()
	const ana = "15557654321"
	post := func(path, body string) {
		t.Helper()
		resp, err := http.Post(base+path, "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode/100 != 2 {
			t.Fatalf("POST %s = %d", path, resp.StatusCode)
		}
	}
	post("/api/phones", `{"number":"`+ana+`","name":"Ana"}`)
	deadline := time.Now().Add(30 * time.Second)
	for {
		var p struct{ Online bool }
		resp, err := http.Get(base + "/api/phones/" + ana)
		if err == nil {
			json.NewDecoder(resp.Body).Decode(&p)
			resp.Body.Close()
		}
		if p.Online {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the second phone is not online: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	post("/api/phones/"+ana+"/chats/"+bizWaID+"/messages", `{"type":"text","text":"Hello! Where is my order?"}`)
	b.Do(chromedp.Navigate(base + "/phones/" + ana + "/chats/" + bizWaID))
	b.Wait(30*time.Second, "the second chat", `document.querySelectorAll('#messages .bubble').length === 1 && document.querySelector('#chat-header img.photo').naturalWidth === 640`, nil)
	tpl := send(t, s, tok, orderMessage(ana, ns, "Ana"))
	list := send(t, s, tok, map[string]any{"to": ana, "type": "interactive", "interactive": json.RawMessage(`{"type":"list","body":{"text":"How would you like it delivered?"},` +
		`"action":{"button":"Delivery options","sections":[{"title":"Options","rows":[{"id":"home","title":"To my door","description":"Monday"},{"id":"shop","title":"Pick up at the shop"}]}]}}`)})
	img := send(t, s, tok, map[string]any{"to": ana, "type": "image", "image": map[string]any{"id": imageID, "caption": "Packed and ready"}})
	bubble(t, b, tpl, "the template", func(v bubbleView) bool { return v.Tpl != nil })
	bubble(t, b, list, "the list", func(v bubbleView) bool { return v.Int != nil })
	bubble(t, b, img, "the image", func(v bubbleView) bool { return v.Img != nil && v.Img.Loaded })
	b.Do(chromedp.EmulateViewport(480, 900))
	b.Eval(`(() => { document.querySelector('.bubble[data-id="`+list+`"] .list-open').click(); document.querySelector('#messages').scrollTop = 1e9; return true; })()`, nil)
	b.Wait(5*time.Second, "the list open", `!document.querySelector('.bubble[data-id="`+list+`"] .list-rows').hidden`, nil)
	return b.Screenshot("#phone")
}

// parcelPNG draws a parcel (a brown box with a band) of w × h pixels: an
// image a person recognises in the README's screenshot.
func parcelPNG(t *testing.T, w, h int) []byte {
	t.Helper()
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			c := color.RGBA{0xe8, 0xf1, 0xf8, 0xff} // sky
			inBox := x > w/5 && x < w*4/5 && y > h/4 && y < h*9/10
			switch {
			case inBox && (x > w*9/20 && x < w*11/20):
				c = color.RGBA{0xf4, 0xd0, 0x3f, 0xff} // tape
			case inBox:
				c = color.RGBA{0xc4, 0x8a, 0x4a, 0xff} // cardboard
			}
			img.Set(x, y, c)
		}
	}
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}
