package waphone_test

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/openwaba/openwaba/chatd/waphone"
)

// writeFile writes size random bytes to a new file called name.
func writeFile(t *testing.T, name string, size int) (string, []byte) {
	t.Helper()
	b := make([]byte, size)
	rand.Read(b)
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return path, b
}

func hexSHA(b []byte) string {
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:])
}

// TestMediaExchange: two phones exchange every kind of attachment; each
// arrives byte for byte, saved in the recipient's home under its hash, with
// every field of the event filled.
func TestMediaExchange(t *testing.T) {
	t.Parallel()
	c := newChatd(t)
	aliceHome, bobHome := c.register(t, "15550005101", "Alice"), c.register(t, "15550005102", "Bob")
	alice, bob := open(t, aliceHome, 0), open(t, bobHome, 0)
	alice.next(t, "ready", is("ready", "", ""))
	bob.next(t, "ready", is("ready", "", ""))

	type file struct {
		name, typ, caption, filename string
		size                         int
		wantMIME, wantExt            string
	}
	files := []file{
		{"photo.jpg", "image", "a photo", "", 200_000, "image/jpeg", ".jpg"},
		{"voice.ogg", "audio", "", "", 100_000, "audio/ogg", ".ogg"},
		{"clip.mp4", "video", "a clip", "", 1_000_000, "video/mp4", ".mp4"},
		{"q3.pdf", "document", "the report", "Report Q3.pdf", 300_000, "application/pdf", ".pdf"},
		{"sticker.webp", "sticker", "", "", 50_000, "image/webp", ".webp"},
		{"notes.txt", "document", "", "", 15, "text/plain", ".txt"}, // file name defaults to the base name
	}
	var first string // the id of Alice's first file
	for _, f := range files {
		path, content := writeFile(t, f.name, f.size)
		id, err := alice.SendMedia(t.Context(), bob.Number(), path, f.typ, f.caption, f.filename, "")
		if err != nil {
			t.Fatalf("SendMedia %s: %v", f.name, err)
		}
		if first == "" {
			first = id
		}
		alice.next(t, "sent receipt for "+f.name, is("receipt", id, "sent"))
		got, skipped := bob.next(t, f.name, func(e waphone.Event) bool { return e.ID == id })
		for _, e := range skipped {
			if e.Event == "error" {
				t.Errorf("Bob: %+v", e)
			}
		}
		filename := f.filename
		if f.typ == "document" && filename == "" {
			filename = f.name
		}
		sum := hexSHA(content)
		want := waphone.Event{Event: "message", ID: id, From: alice.Number(), Type: f.typ, Name: "Alice",
			File: filepath.Join(bobHome, "media", sum+f.wantExt), SHA256: sum, MimeType: f.wantMIME, Caption: f.caption, Filename: filename}
		if diff := cmp.Diff(want, got, cmpopts.IgnoreFields(waphone.Event{}, "Timestamp", "Object", "Content")); diff != "" {
			t.Errorf("%s at Bob mismatch (-want +got):\n%s", f.name, diff)
		}
		if got.Timestamp == "" {
			t.Errorf("%s: no timestamp", f.name)
		}
		saved, err := os.ReadFile(got.File)
		if err != nil {
			t.Fatalf("%s: %v", f.name, err)
		}
		if !bytes.Equal(saved, content) {
			t.Errorf("%s: the saved file differs from the sent one", f.name)
		}
		alice.next(t, "delivered receipt for "+f.name, is("receipt", id, "delivered"))
	}

	// The JSON event has the fields the CLI promises.
	path, content := writeFile(t, "back.png", 1234)
	id, err := bob.SendMediaReply(t.Context(), alice.Number(), path, "image", "right back", "", first, "")
	if err != nil {
		t.Fatal(err)
	}
	got, _ := alice.next(t, "Bob's image", is("message", id, ""))
	var fields map[string]any
	b, _ := json.Marshal(got)
	if err := json.Unmarshal(b, &fields); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"event", "id", "from", "type", "file", "sha256", "mime_type", "caption", "timestamp", "name"} {
		if s, _ := fields[k].(string); s == "" {
			t.Errorf("JSON event %s lacks %q", b, k)
		}
	}
	// And the media object under the type, as the API shows it.
	if img, _ := fields["image"].(map[string]any); img["caption"] != "right back" || img["mime_type"] != "image/png" {
		t.Errorf("JSON event %s: image object %v", b, fields["image"])
	}
	if saved, _ := os.ReadFile(got.File); !bytes.Equal(saved, content) {
		t.Errorf("Bob's image arrived different")
	}
	if got.Context == nil || got.Context.ID != first || got.Context.From != alice.Number() {
		t.Errorf("Bob's image replies to %+v, want Alice's first file %s", got.Context, first)
	}
	for _, home := range []string{aliceHome, bobHome} {
		if n := countFiles(t, filepath.Join(home, "tmp")); n != 0 {
			t.Errorf("%d temporary files left in %s", n, home)
		}
	}
}

// TestMediaCorrupted: a blob changed on chatd's volume after the upload is
// refused by the recipient (hash mismatch) and reported as a failed
// download; nothing is saved, and the message is still acked and receipted.
func TestMediaCorrupted(t *testing.T) {
	t.Parallel()
	c := newChatd(t)
	aliceHome, bobHome := c.register(t, "15550005111", "Alice"), c.register(t, "15550005112", "Bob")
	alice := open(t, aliceHome, 0)
	alice.next(t, "ready", is("ready", "", ""))
	// Bob opened once so that his keys are published, then offline.
	bob := open(t, bobHome, 0)
	bob.next(t, "ready", is("ready", "", ""))
	bob.stop(t)

	path, _ := writeFile(t, "photo.jpg", 50_000)
	id, err := alice.SendMedia(t.Context(), bob.Number(), path, "image", "tampered", "", "")
	if err != nil {
		t.Fatal(err)
	}
	alice.next(t, "sent receipt", is("receipt", id, "sent"))
	blobs := c.blobs(t)
	if len(blobs) != 1 {
		t.Fatalf("blobs on chatd's volume = %v, want 1", blobs)
	}
	b, err := os.ReadFile(blobs[0])
	if err != nil {
		t.Fatal(err)
	}
	b[len(b)/2] ^= 0x40
	if err := os.WriteFile(blobs[0], b, 0o600); err != nil {
		t.Fatal(err)
	}

	bob = open(t, bobHome, 0)
	e, skipped := bob.next(t, "the message's outcome", func(e waphone.Event) bool { return e.ID == id })
	if e.Event != "error" || e.From != alice.Number() || !strings.HasPrefix(e.Error, "media download failed: ") || !strings.Contains(e.Error, "hash mismatch") {
		t.Errorf("event = %+v, want a failed download (hash mismatch)", e)
	}
	for _, s := range skipped {
		if s.Event == "message" {
			t.Errorf("Bob showed %+v", s)
		}
	}
	alice.next(t, "delivered receipt", is("receipt", id, "delivered"))
	waitFor(t, "Bob's phone to ack the message", func() bool { return c.queueRows(t, bob.Number()) == 0 })
	if n := countFiles(t, filepath.Join(bobHome, "media")); n != 0 {
		t.Errorf("%d files saved from a corrupted blob", n)
	}
	if n := countFiles(t, filepath.Join(bobHome, "tmp")); n != 0 {
		t.Errorf("%d temporary files left", n)
	}
}

// TestMediaWhileOffline: an attachment sent while chatd is down waits (only
// its path is kept) and goes when the phone is back online.
func TestMediaWhileOffline(t *testing.T) {
	t.Parallel()
	c := newChatd(t)
	alice := open(t, c.register(t, "15550005121", "Alice"), 0)
	bob := open(t, c.register(t, "15550005122", "Bob"), 0)
	alice.next(t, "ready", is("ready", "", ""))
	bob.next(t, "ready", is("ready", "", ""))

	c.stop()
	waitFor(t, "Alice offline", func() bool { return alice.State().String() != "connected" })
	path, content := writeFile(t, "later.mp4", 70_000)
	id, err := alice.SendMedia(t.Context(), bob.Number(), path, "video", "", "", "")
	if err != nil {
		t.Fatal(err)
	}
	text, err := alice.SendText(t.Context(), bob.Number(), "after the video", "", "")
	if err != nil {
		t.Fatal(err)
	}
	if n := len(c.blobs(t)); n != 0 {
		t.Fatalf("%d blobs uploaded while offline", n)
	}
	c.restart()
	e, _ := bob.next(t, "the video", is("message", id, ""))
	if saved, _ := os.ReadFile(e.File); !bytes.Equal(saved, content) {
		t.Errorf("the video arrived different: %+v", e)
	}
	// Order kept: the text queued after the video arrives after it.
	if e, _ := bob.next(t, "the text", is("message", text, "")); e.Text != "after the video" {
		t.Errorf("text = %+v", e)
	}
}

// TestSendMediaRefusals: what cannot be sent is refused at once.
func TestSendMediaRefusals(t *testing.T) {
	t.Parallel()
	c := newChatd(t)
	alice := open(t, c.register(t, "15550005131", "Alice"), 0)
	txt, _ := writeFile(t, "notes.txt", 10)
	bigSticker, _ := writeFile(t, "big.webp", 600_000)
	unknown, _ := writeFile(t, "data.bin", 100)
	for _, tt := range []struct {
		name, to, path, typ, want string
	}{
		{"text as an image", "15550005132", txt, "image", "cannot be sent as image"},
		{"sticker over its limit", "15550005132", bigSticker, "sticker", "at most"},
		{"no such file", "15550005132", filepath.Join(t.TempDir(), "none.jpg"), "image", "no such file"},
		{"unknown type", "15550005132", txt, "gif", "media type"},
		{"bad recipient", "12", txt, "document", "digits"},
		{"a directory", "15550005132", t.TempDir(), "document", "not a regular file"},
		{"sniffed octet-stream as audio", "15550005132", unknown, "audio", "cannot be sent as audio"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := alice.SendMedia(t.Context(), tt.to, tt.path, tt.typ, "", "", "")
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("SendMedia = %v, want an error containing %q", err, tt.want)
			}
		})
	}
}

// blobs lists the blob files on chatd's media volume.
func (c *chatd) blobs(t *testing.T) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(filepath.Join(c.mediaDir, "sha256"), func(path string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			out = append(out, path)
		}
		return err
	})
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	return out
}

func countFiles(t *testing.T, dir string) int {
	t.Helper()
	es, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	return len(es)
}
