package webphone

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"

	"github.com/openwaba/openwaba/chatd/waphone"
)

// Record is one line of a phone's history: a message shown or sent, a
// change of a sent message's status, a read receipt the phone sent, or a
// system line. The page folds them into conversations; the server keeps
// them in history.jsonl in the phone's home, so a restart keeps the chats.
type Record struct {
	Seq  int64  `json:"seq"`  // position in the phone's history, from 1
	Kind string `json:"kind"` // message, status, read or system
	Chat string `json:"chat"` // the other party's number
	At   int64  `json:"at"`   // unix milliseconds
	ID   string `json:"id,omitempty"`
	// A message: "in" (from the business) or "out" (the customer's).
	Dir  string `json:"dir,omitempty"`
	Type string `json:"type,omitempty"` // the API's type name (text, image, template, interactive, …)
	Text string `json:"text,omitempty"`
	// Object is the content in the API's send shape (package message), as
	// waphone shows it: a template's hydrated header, body, footer and
	// buttons; an interactive message's buttons or list; a location; …
	Object json.RawMessage `json:"object,omitempty"`
	// An attachment: its name under the phone's files (see Server), type,
	// name, caption, size and SHA-256.
	File     string           `json:"file,omitempty"`
	MimeType string           `json:"mime_type,omitempty"`
	Filename string           `json:"filename,omitempty"`
	Caption  string           `json:"caption,omitempty"`
	Size     int64            `json:"size,omitempty"`
	SHA256   string           `json:"sha256,omitempty"`
	Context  *waphone.Context `json:"context,omitempty"` // the message this one replies to
	Name     string           `json:"name,omitempty"`    // the sender's profile name
	// A status record: pending, sent, delivered, read or failed (Error
	// says why).
	Status string `json:"status,omitempty"`
	Error  string `json:"error,omitempty"`
}

const (
	historyFile = "history.jsonl"
	// maxRecordBytes bounds one history line (a message object is at most a
	// few kilobytes; a template or list a little more).
	maxRecordBytes = 256 << 10
	// maxKept bounds the records a phone keeps in memory (the newest).
	maxKept = 50_000
	// subscriberBuffer is how many records a live channel may fall behind
	// before it is closed (the page reconnects and reloads the chat).
	subscriberBuffer = 256
)

// history is a phone's records: the file, the records in memory and the
// live subscribers. It is safe for concurrent use.
type history struct {
	mu      sync.Mutex
	f       *os.File
	w       *bufio.Writer
	records []Record
	next    int64
	subs    map[chan Record]struct{}
}

// openHistory loads home's history.jsonl (a torn last line, from a crash in
// the middle of a write, is dropped) and opens it for appending.
func openHistory(home string) (*history, error) {
	path := filepath.Join(home, historyFile)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, err
	}
	h := &history{f: f, next: 1, subs: map[chan Record]struct{}{}}
	r := bufio.NewReaderSize(f, 64<<10)
	var good int64
	for {
		line, err := readLine(r)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			f.Close()
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		var rec Record
		if json.Unmarshal(line, &rec) != nil || rec.Seq < h.next {
			break // torn or foreign: keep what came before
		}
		good += int64(len(line)) + 1
		h.keep(rec)
		h.next = rec.Seq + 1
	}
	if err := f.Truncate(good); err != nil {
		f.Close()
		return nil, err
	}
	if _, err := f.Seek(good, io.SeekStart); err != nil {
		f.Close()
		return nil, err
	}
	h.w = bufio.NewWriter(f)
	return h, nil
}

// readLine reads one line, at most maxRecordBytes. A line a crash cut
// short is not valid JSON (it lacks its closing brace): the caller stops
// there.
func readLine(r *bufio.Reader) ([]byte, error) {
	var line []byte
	for {
		chunk, isPrefix, err := r.ReadLine()
		if err != nil {
			return nil, err
		}
		line = append(line, chunk...)
		if len(line) > maxRecordBytes {
			return nil, fmt.Errorf("a history line is over %d bytes", maxRecordBytes)
		}
		if !isPrefix {
			break
		}
	}
	return line, nil
}

func (h *history) keep(rec Record) {
	h.records = append(h.records, rec)
	if len(h.records) > maxKept {
		h.records = append(h.records[:0:0], h.records[len(h.records)-maxKept/2:]...)
	}
}

// add appends rec (its Seq is set here), writes it through to the file and
// hands it to every subscriber.
func (h *history) add(rec Record) (Record, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	rec.Seq = h.next
	b, err := json.Marshal(rec)
	if err != nil {
		return Record{}, err
	}
	if len(b) > maxRecordBytes {
		return Record{}, fmt.Errorf("a history record of %d bytes is over %d", len(b), maxRecordBytes)
	}
	if _, err := h.w.Write(append(b, '\n')); err != nil {
		return Record{}, err
	}
	if err := h.w.Flush(); err != nil {
		return Record{}, err
	}
	h.next++
	h.keep(rec)
	for ch := range h.subs {
		select {
		case ch <- rec:
		default: // too slow: it reloads when it reconnects
			delete(h.subs, ch)
			close(ch)
		}
	}
	return rec, nil
}

// find returns the message record with id, if any.
func (h *history) find(id string) (Record, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for i := len(h.records) - 1; i >= 0; i-- {
		if r := h.records[i]; r.Kind == "message" && r.ID == id {
			return r, true
		}
	}
	return Record{}, false
}

// chat returns the records of chat (every chat when chat is ""), oldest
// first, at most the last limit of them.
func (h *history) chat(chat string, limit int) []Record {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []Record
	for i := len(h.records) - 1; i >= 0 && len(out) < limit; i-- {
		if r := h.records[i]; chat == "" || r.Chat == chat {
			out = append(out, r)
		}
	}
	for i, j := 0, len(out)-1; i < j; i, j = i+1, j-1 {
		out[i], out[j] = out[j], out[i]
	}
	return out
}

// all returns a copy of every record kept.
func (h *history) all() []Record {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]Record(nil), h.records...)
}

// subscribe returns a channel of the records added from now on; it is
// closed by unsubscribe, or when it falls behind.
func (h *history) subscribe() chan Record {
	ch := make(chan Record, subscriberBuffer)
	h.mu.Lock()
	h.subs[ch] = struct{}{}
	h.mu.Unlock()
	return ch
}

func (h *history) unsubscribe(ch chan Record) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if _, ok := h.subs[ch]; ok {
		delete(h.subs, ch)
		close(ch)
	}
}

// close ends every subscription and closes the file.
func (h *history) close() error {
	h.mu.Lock()
	defer h.mu.Unlock()
	for ch := range h.subs {
		delete(h.subs, ch)
		close(ch)
	}
	err := h.w.Flush()
	if cerr := h.f.Close(); err == nil {
		err = cerr
	}
	return err
}
