package stack

import (
	"bufio"
	"bytes"
	"encoding/json"
	"strconv"
	"strings"
	"time"
)

// ChatdSession is one line of chatd's log about a chat session: a login
// (chatd accepted a session for a slot) or the end of a session.
type ChatdSession struct {
	Event   string // "login" or "session ended"
	Account string // the number that logged in (business or phone)
	Shard   uint32
	Epoch   uint64
	Kind    string // login: chatd's kind of account, when it says
	Time    time.Time
	// Session ended only: why, and how many messages and receipts chatd
	// relayed on it.
	Reason             string
	Messages, Receipts int
}

// ChatdSessions reads the logins and session ends from the log of every
// chatd run of the stack, in the order chatd logged them. Lines that are not
// JSON (a panic, the race detector) are skipped.
func (s *Stack) ChatdSessions() []ChatdSession {
	var out []ChatdSession
	for _, p := range s.chatdProcs {
		out = append(out, parseChatdSessions(p.Log())...)
	}
	return out
}

// ChatdSessionsOf is ChatdSessions for one account.
func (s *Stack) ChatdSessionsOf(account string) []ChatdSession {
	var out []ChatdSession
	for _, e := range s.ChatdSessions() {
		if e.Account == account {
			out = append(out, e)
		}
	}
	return out
}

func parseChatdSessions(log string) []ChatdSession {
	var out []ChatdSession
	sc := bufio.NewScanner(strings.NewReader(log))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Bytes()
		if !bytes.HasPrefix(line, []byte("{")) {
			continue
		}
		var m map[string]any
		d := json.NewDecoder(bytes.NewReader(line))
		d.UseNumber()
		if d.Decode(&m) != nil {
			continue
		}
		msg, _ := m["msg"].(string)
		if msg != "login" && msg != "session ended" {
			continue
		}
		e := ChatdSession{
			Event:    msg,
			Account:  str(m["account"]),
			Shard:    uint32(num(m["shard"])),
			Epoch:    uint64(num(m["epoch"])),
			Kind:     str(m["kind"]),
			Reason:   str(m["reason"]),
			Messages: int(num(m["messages"])),
			Receipts: int(num(m["receipts"])),
		}
		e.Time, _ = time.Parse(time.RFC3339Nano, str(m["time"]))
		out = append(out, e)
	}
	return out
}

// str renders a JSON value as a string (numbers too, in case a number is
// logged as one).
func str(v any) string {
	switch v := v.(type) {
	case string:
		return v
	case json.Number:
		return v.String()
	case nil:
		return ""
	default:
		b, _ := json.Marshal(v)
		return string(b)
	}
}

// num reads a JSON number, or a number logged as a string.
func num(v any) int64 {
	switch v := v.(type) {
	case json.Number:
		if n, err := v.Int64(); err == nil {
			return n
		}
		if n, err := strconv.ParseUint(v.String(), 10, 64); err == nil {
			return int64(n)
		}
	case string:
		if n, err := strconv.ParseInt(v, 10, 64); err == nil {
			return n
		}
	}
	return 0
}
