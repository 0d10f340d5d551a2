package e2e

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"image"
	"image/png"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/openwaba/openwaba/e2e/stack"
)

// TestOnPremProfile: the on-prem profile routes read and write the same
// business profile the Cloud whatsapp_business_profile edge serves, with
// the on-prem shapes and the profile's limits.
func TestOnPremProfile(t *testing.T) {
	s := stack.New(t, stack.Options{})
	tok := s.Login()
	s.Register(tok, bizCC, bizPhone)
	s.WaitHealth(tok, "connected", 30*time.Second)

	r := s.Do("GET", "/v1/settings/business/profile", bearer(tok), nil)
	p, _ := r.Body["settings"].(map[string]any)
	if r.Status != 200 || p == nil {
		t.Fatalf("GET business profile = %d %s", r.Status, r.Raw)
	}
	if r := s.Do("POST", "/v1/settings/business/profile/", bearer(tok), map[string]any{
		"address": "1 Main St", "description": "We sell tea", "email": "shop@example.com", "vertical": "RETAIL",
		"websites": []string{"https://example.com", "https://shop.example.com"},
	}); r.Status != 200 {
		t.Fatalf("POST business profile = %d %s", r.Status, r.Raw)
	}
	if r := s.Do("PATCH", "/v1/settings/profile/about", bearer(tok), map[string]any{"text": "Open 9 to 5"}); r.Status != 200 {
		t.Fatalf("PATCH about = %d %s", r.Status, r.Raw)
	}
	r = s.Do("GET", "/v1/settings/business/profile", bearer(tok), nil)
	want := `{"settings":{"business":{"profile":{"address":"1 Main St","description":"We sell tea","email":"shop@example.com","vertical":"RETAIL","websites":["https://example.com","https://shop.example.com"]}}}`
	if r.Status != 200 || len(r.Raw) < len(want) || string(r.Raw[:len(want)]) != want {
		t.Errorf("GET business profile = %d %s, want it to begin %s", r.Status, r.Raw, want)
	}
	r = s.Do("GET", "/v1/settings/profile/about", bearer(tok), nil)
	if about := dig(r.Body, "settings", "profile", "about", "text"); r.Status != 200 || about != "Open 9 to 5" {
		t.Errorf("GET about = %d %s", r.Status, r.Raw)
	}
	// The Cloud edge serves the same profile.
	r = s.Do("GET", "/v1/configs/phone_number", bearer(tok), nil)
	pnid, _ := r.Body["phone_number_id"].(string)
	r = s.Do("GET", "/v23.0/"+pnid+"/whatsapp_business_profile", bearer(tok), nil)
	data, _ := r.Body["data"].([]any)
	if r.Status != 200 || len(data) != 1 || data[0].(map[string]any)["about"] != "Open 9 to 5" || data[0].(map[string]any)["address"] != "1 Main St" {
		t.Errorf("Cloud profile = %d %s", r.Status, r.Raw)
	}
	for _, tt := range []struct {
		method, path string
		body         any
		code         int
	}{
		{"POST", "/v1/settings/business/profile", map[string]any{"websites": []string{"https://a.example", "https://b.example", "https://c.example"}}, 1009},
		{"POST", "/v1/settings/business/profile", map[string]any{"vertical": "Tea shops"}, 1009},
		{"POST", "/v1/settings/business/profile", map[string]any{"email": "not an email"}, 1009},
		{"POST", "/v1/settings/business/profile", map[string]any{"hours": "9-5"}, 1010},
		{"POST", "/v1/settings/business/profile", map[string]any{}, 1008},
		{"PATCH", "/v1/settings/profile/about", map[string]any{}, 1008},
		{"PATCH", "/v1/settings/profile/about", map[string]any{"text": string(make([]byte, 140))}, 0},
	} {
		r := s.Do(tt.method, tt.path, bearer(tok), tt.body)
		if r.Status != 400 || (tt.code != 0 && r.ErrorCode() != tt.code) {
			t.Errorf("%s %s %v = %d %s, want 400 with %d", tt.method, tt.path, tt.body, r.Status, r.Raw, tt.code)
		}
	}
	// Nothing refused changed the profile.
	r = s.Do("GET", "/v1/settings/business/profile", bearer(tok), nil)
	if len(r.Raw) < len(want) || string(r.Raw[:len(want)]) != want {
		t.Errorf("after the refusals the profile is %s", r.Raw)
	}
}

// dig walks nested JSON objects.
func dig(m map[string]any, keys ...string) any {
	var v any = m
	for _, k := range keys {
		o, ok := v.(map[string]any)
		if !ok {
			return nil
		}
		v = o[k]
	}
	return v
}

// pngOf is a w×h PNG.
func pngOf(t *testing.T, w, h int) []byte {
	t.Helper()
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	for i := range img.Pix {
		img.Pix[i] = byte(i * 7)
	}
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// TestProfilePhoto: the on-prem photo routes (upload checked, the file
// back, a signed link, delete), and what the customer's phone sees of the
// business on the network: name, about, business profile and photo, in
// the library and in waphone --json.
func TestProfilePhoto(t *testing.T) {
	s := stack.New(t, stack.Options{})
	tok := s.Login()
	s.Register(tok, bizCC, bizPhone)
	s.WaitHealth(tok, "connected", 30*time.Second)
	biz := bizCC + bizPhone
	photo := pngOf(t, 640, 640)
	sum := sha256.Sum256(photo)

	for _, tt := range []struct {
		name string
		body []byte
		code int
	}{{"too small", pngOf(t, 320, 640), 1009}, {"not an image", []byte("GIF89a not really"), 1009}, {"empty", nil, 1008}} {
		if code, _, body := s.Raw("POST", "/v1/settings/profile/photo", bearer(tok), "image/png", tt.body); code != 400 || !strings.Contains(string(body), strconv.Itoa(tt.code)) {
			t.Errorf("upload %s = %d %s, want 400 with %d", tt.name, code, body, tt.code)
		}
	}
	if code, _, body := s.Raw("POST", "/v1/settings/profile/photo/", bearer(tok), "image/png", photo); code != 201 {
		t.Fatalf("upload = %d %s", code, body)
	}
	if code, hdr, body := s.Raw("GET", "/v1/settings/profile/photo", bearer(tok), "", nil); code != 200 || !bytes.Equal(body, photo) || hdr.Get("Content-Type") != "image/png" {
		t.Errorf("GET photo = %d %s, %d bytes", code, hdr.Get("Content-Type"), len(body))
	}
	r := s.Do("GET", "/v1/settings/profile/photo?format=link", bearer(tok), nil)
	link, _ := dig(r.Body, "settings", "profile", "photo", "link").(string)
	if r.Status != 200 || link == "" {
		t.Fatalf("GET photo link = %d %s", r.Status, r.Raw)
	}
	resp, err := s.Client.Get(link) // no credentials
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !bytes.Equal(got, photo) {
		t.Errorf("GET the link = %d, %d bytes", resp.StatusCode, len(got))
	}
	if resp, err := s.Client.Get(link + "0"); err == nil {
		resp.Body.Close()
		if resp.StatusCode != 403 {
			t.Errorf("a link with a wrong signature = %d, want 403", resp.StatusCode)
		}
	}
	if r := s.Do("PATCH", "/v1/settings/profile/about", bearer(tok), map[string]any{"text": "Tea, all day"}); r.Status != 200 {
		t.Fatalf("PATCH about = %d %s", r.Status, r.Raw)
	}
	if r := s.Do("POST", "/v1/settings/business/profile", bearer(tok), map[string]any{"description": "We sell tea", "vertical": "RETAIL"}); r.Status != 200 {
		t.Fatalf("POST business profile = %d %s", r.Status, r.Raw)
	}

	phone := s.NewPhone("15551230007", "Mo")
	pr, err := phone.Profile(t.Context(), biz)
	if err != nil {
		t.Fatal(err)
	}
	if pr.Name != "Acme Shop" || pr.About != "Tea, all day" || pr.PhotoSHA256 != hex.EncodeToString(sum[:]) || !bytes.Equal(pr.Photo, photo) ||
		!strings.Contains(string(pr.Business), `"description":"We sell tea"`) {
		t.Errorf("the phone sees %+v (business %s)", pr.Event(), pr.Business)
	}

	// The waphone command answers the same in --json mode.
	home := t.TempDir()
	if out, err := exec.Command(s.Bins.Path("waphone"), "--network", strings.Join(s.ChatAddrs(), ","), "--admin", s.AdminAddr(), "--home", home, "register", "15551230008", "--name", "No").CombinedOutput(); err != nil {
		t.Fatalf("waphone register: %v\n%s", err, out)
	}
	cmd := exec.Command(s.Bins.Path("waphone"), "--home", home, "--json")
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	lines := stack.NewLineReader(t, cmd)
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Signal(os.Interrupt); cmd.Wait() })
	lines.WaitFor(30*time.Second, `"event":"ready"`)
	stdin.Write([]byte(`{"cmd":"profile","number":"` + biz + `"}` + "\n"))
	line := lines.WaitFor(30*time.Second, `"event":"profile"`)
	var ev struct {
		Number, Name, About, File string
		PhotoSHA256               string         `json:"photo_sha256"`
		Business                  map[string]any `json:"business"`
	}
	if err := json.Unmarshal([]byte(line), &ev); err != nil {
		t.Fatalf("%s: %v", line, err)
	}
	if ev.Number != biz || ev.Name != "Acme Shop" || ev.About != "Tea, all day" || ev.PhotoSHA256 != hex.EncodeToString(sum[:]) || ev.Business["vertical"] != "RETAIL" {
		t.Errorf("profile event = %s", line)
	}
	if b, err := os.ReadFile(ev.File); err != nil || !bytes.Equal(b, photo) {
		t.Errorf("the saved photo %s: %v", ev.File, err)
	}

	// Removed: the file is gone here and on the network.
	if r := s.Do("DELETE", "/v1/settings/profile/photo", bearer(tok), nil); r.Status != 200 {
		t.Fatalf("DELETE photo = %d %s", r.Status, r.Raw)
	}
	if code, _, _ := s.Raw("GET", "/v1/settings/profile/photo", bearer(tok), "", nil); code != 404 {
		t.Errorf("GET photo after DELETE = %d, want 404", code)
	}
	if pr, err := phone.Profile(t.Context(), biz); err != nil || pr.PhotoSHA256 != "" || pr.About != "Tea, all day" {
		t.Errorf("after DELETE the phone sees %+v, %v", pr.Event(), err)
	}
}
