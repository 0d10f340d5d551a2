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
	// maxHistoryBytes bounds the file: past it, it is rewritten with the
	// records kept in memory (the newest).
	maxHistoryBytes = 64 << 20
	// maxKept bounds the records a phone keeps in memory: past it, the
	// oldest half is dropped (so between maxKept/2 and maxKept are kept).
	maxKept = 50_000
	// subscriberBuffer is how many records a live channel may fall behind
	// before it is closed (the page reconnects and reloads the chat).
	subscriberBuffer = 256
)

// errClosed is add's answer once the phone has stopped.
var errClosed = errors.New("the phone has stopped")

// history is a phone's records: the file, the records in memory and the
// live subscribers. It is safe for concurrent use.
type history struct {
	mu      sync.Mutex
	path    string
	f       *os.File
	size    int64 // the file's length: the end of its last complete line
	records []Record
	next    int64
	subs    map[chan Record]struct{}
	closed  bool
}

// openHistory loads home's history.jsonl and opens it for appending. A last
// line without its newline (a crash in the middle of a write) is cut off; a
// line in the middle that is not a record (damaged, over maxRecordBytes, out
// of order) is skipped and the file rewritten without it.
func openHistory(home string) (*history, error) {
	path := filepath.Join(home, historyFile)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, err
	}
	h := &history{path: path, f: f, next: 1, subs: map[chan Record]struct{}{}}
	r := bufio.NewReaderSize(f, 64<<10)
	skipped, unterminated := 0, false
	for {
		line, n, complete, err := readLine(r)
		if err != nil && !errors.Is(err, io.EOF) {
			f.Close()
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		var rec Record
		valid := line != nil && json.Unmarshal(line, &rec) == nil && rec.Seq >= h.next
		if !complete {
			// The end: nothing more, a torn last line (cut off below), or a
			// whole record whose newline a crash kept from the disk.
			if len(line) > 0 && valid {
				h.keep(rec)
				h.next = rec.Seq + 1
				unterminated = true
			}
			break
		}
		h.size += n
		if !valid {
			skipped++
			continue
		}
		h.keep(rec)
		h.next = rec.Seq + 1
	}
	if skipped > 0 || unterminated || h.size > maxHistoryBytes {
		if err := h.rewrite(); err != nil {
			f.Close()
			return nil, err
		}
		return h, nil
	}
	if err := f.Truncate(h.size); err != nil {
		f.Close()
		return nil, err
	}
	if _, err := f.Seek(h.size, io.SeekStart); err != nil {
		f.Close()
		return nil, err
	}
	return h, nil
}

// readLine reads up to and including the next newline. It returns the line
// without it (nil when it is over maxRecordBytes: the rest is read and
// dropped), the bytes consumed, and whether the line was complete (ended
// with a newline); at the end of the file an incomplete line comes back
// with io.EOF.
func readLine(r *bufio.Reader) (line []byte, n int64, complete bool, err error) {
	tooLong := false
	for {
		chunk, err := r.ReadSlice('\n')
		n += int64(len(chunk))
		if !tooLong {
			if len(line)+len(chunk) > maxRecordBytes+1 {
				tooLong, line = true, nil
			} else {
				line = append(line, chunk...)
			}
		}
		switch {
		case err == nil:
			if tooLong {
				return nil, n, true, nil
			}
			return line[:len(line)-1], n, true, nil
		case errors.Is(err, bufio.ErrBufferFull):
			continue
		default:
			if tooLong {
				line = nil
			}
			return line, n, false, err
		}
	}
}

func (h *history) keep(rec Record) {
	h.records = append(h.records, rec)
	if len(h.records) > maxKept {
		h.records = append(h.records[:0:0], h.records[len(h.records)-maxKept/2:]...)
	}
}

// rewrite replaces the file with the records in memory (h.mu held, or
// during open), through a temporary file renamed over it.
func (h *history) rewrite() error {
	tmp, err := os.CreateTemp(filepath.Dir(h.path), ".history-*")
	if err != nil {
		return err
	}
	w := bufio.NewWriter(tmp)
	var size int64
	for _, rec := range h.records {
		b, _ := json.Marshal(rec)
		w.Write(append(b, '\n'))
		size += int64(len(b)) + 1
	}
	err = w.Flush()
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), h.path)
	}
	if err != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("rewrite %s: %w", h.path, err)
	}
	f, err := os.OpenFile(h.path, os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	h.f.Close()
	h.f, h.size = f, size
	return nil
}

// add appends rec (its Seq is set here), writes it through to the file and
// hands it to every subscriber. A failed write is undone (the file is cut
// back to its last complete line), so one error does not spoil later lines.
func (h *history) add(rec Record) (Record, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return Record{}, errClosed
	}
	rec.Seq = h.next
	b, err := json.Marshal(rec)
	if err != nil {
		return Record{}, err
	}
	if len(b) > maxRecordBytes {
		return Record{}, fmt.Errorf("a history record of %d bytes is over %d", len(b), maxRecordBytes)
	}
	if _, err := h.f.Write(append(b, '\n')); err != nil {
		// Cut a partial line off (and write from there next time; a file
		// in append mode writes at the end anyway).
		h.f.Truncate(h.size)
		h.f.Seek(h.size, io.SeekStart)
		return Record{}, err
	}
	h.size += int64(len(b)) + 1
	h.next++
	h.keep(rec)
	if h.size > maxHistoryBytes {
		if err := h.rewrite(); err != nil {
			return Record{}, err
		}
	}
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
// closed by unsubscribe, when it falls behind, or when the phone stops
// (at once if it has).
func (h *history) subscribe() chan Record {
	ch := make(chan Record, subscriberBuffer)
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		close(ch)
		return ch
	}
	h.subs[ch] = struct{}{}
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
	if h.closed {
		return nil
	}
	h.closed = true
	for ch := range h.subs {
		delete(h.subs, ch)
		close(ch)
	}
	return h.f.Close()
}
