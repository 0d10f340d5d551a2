// Command waphone is a simulated customer phone on the chatd network.
//
//	waphone [--network ADDR[,ADDR]] [--admin HOST:PORT] [--root-key KEY | --root-key-file FILE] --home DIR register NUMBER [--name NAME] [--code CODE]
//	waphone --home DIR            interactive, for a terminal
//	waphone --home DIR --json     one JSON command per stdin line, one JSON event per stdout line
//	waphone [--network …] [--admin …] [--root-key-file FILE] serve [--dir DIR] [--listen ADDR]
//
// serve is the web phone (package webphone): it hosts the phones in DIR
// (default $WA_WEBPHONE_DIR, else ./webphone; one waphone home per number)
// and serves their page and JSON API on ADDR (default
// $WA_WEBPHONE_ADDR:$WA_WEBPHONE_PORT, which default to 127.0.0.1:9091). A listener off loopback needs --tls-cert
// and --tls-key, or --plain-http where something else keeps it on the host
// (a container port published on 127.0.0.1).
//
// ADDR is HOST:PORT (raw) or tls://HOST:PORT (inside TLS); HTTPS_PROXY is
// honoured. The network root key (base64, as chatd writes it to
// chat-root.pub) is pinned at registration and kept in the phone's home;
// without --root-key or --root-key-file it is read from the admin API.
//
// JSON commands:
//
//	{"cmd":"send","to":"<digits>","text":"…","reply_to":"<id>","id":"<optional id>"}
//	{"cmd":"send","to":"<digits>","file":"PATH","type":"image|audio|video|document|sticker","caption":"…","filename":"…","reply_to":"<id>","id":"<optional id>"}
//	{"cmd":"send","to":"<digits>","location":{"latitude":…,"longitude":…,"name":"…","address":"…"}}
//	{"cmd":"send","to":"<digits>","contacts":[{"name":{"formatted_name":"…"},"phones":[{"phone":"…"}]}]}
//	{"cmd":"send","to":"<digits>","reaction":{"message_id":"<id>","emoji":"👍"}}   (an empty emoji removes it)
//	{"cmd":"choose","id":"<business message id>","choice":"<button or row id, or its number>"}
//	{"cmd":"read","id":"<message id>"}
//	{"cmd":"profile","number":"<digits>"}   → {"event":"profile","number","name","about","photo_sha256","business":{…},"file":"<saved photo>"}
//
// A send with a file sends it as an attachment (type defaults to document);
// location, contacts and reaction take the API's object (package
// message), and any send may carry "reply_to".
//
// JSON events: message, receipt (sent|delivered|read), queued, ready, error;
// see package waphone. A received message carries its content in the API's
// send shape under its type, and a received attachment is saved in the
// phone's home:
//
//	{"event":"message","id":…,"from":…,"type":"location","location":{"latitude":…,"longitude":…,"name":…},"context":{"id":…,"from":…}}
//	{"event":"message","id":…,"from":…,"type":"image","image":{…},"file":"<saved path>","sha256":"<hex>","mime_type":…,"caption":…,"filename":…,"timestamp":…,"name":…}
//
// Interactive commands: /to NUMBER, then text lines; /file PATH [TYPE]
// [CAPTION]; /location LAT LON [NAME]; /react ID EMOJI; /choose ID N (a
// button or list row of an interactive message, shown numbered); /read ID;
// /profile [NUMBER] (the chat's by default: name, about, photo, business
// profile); /quit.
package main

import (
	"bufio"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/openwaba/openwaba/api/message"
	"github.com/openwaba/openwaba/chatd/config"
	"github.com/openwaba/openwaba/chatd/waphone"
	"github.com/openwaba/openwaba/chatd/wire"
	"github.com/openwaba/openwaba/media"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Stdin, os.Stdout, os.Stderr, os.Args[1:])
	stop()
	if err != nil && !errors.Is(err, context.Canceled) {
		fmt.Fprintln(os.Stderr, "waphone:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, stdin io.Reader, stdout, stderr io.Writer, args []string) error {
	fs := flag.NewFlagSet("waphone", flag.ContinueOnError)
	home := fs.String("home", os.Getenv("WAPHONE_HOME"), "the phone's home directory (keys, seen messages)")
	network := fs.String("network", "127.0.0.1:5222", "chatd addresses, tried in order (comma-separated; tls://HOST:PORT for TLS)")
	rootKey := fs.String("root-key", "", "the network root key to pin at registration (base64; default: read it from the admin API)")
	rootKeyFile := fs.String("root-key-file", "", "file holding the network root key (chatd's chat-root.pub)")
	admin := fs.String("admin", "", "chatd sandbox admin address for verification codes (default: network host, port 5280)")
	jsonMode := fs.Bool("json", false, "JSON commands on stdin, JSON events on stdout")
	logLevel := fs.String("log-level", "warn", "log level on stderr")
	if err := fs.Parse(args); err != nil {
		return err
	}
	log, err := config.NewLogger(stderr, config.Log{Level: *logLevel, Format: "text"})
	if err != nil {
		return err
	}
	rest := fs.Args()
	if len(rest) > 0 && rest[0] == "serve" {
		return serve(ctx, stdout, log, rest[1:], splitAddrs(*network), *admin, *rootKey, *rootKeyFile)
	}
	if *home == "" {
		return errors.New("--home is required")
	}
	if len(rest) > 0 && rest[0] == "register" {
		rfs := flag.NewFlagSet("register", flag.ContinueOnError)
		name := rfs.String("name", "", "profile name shown to businesses")
		code := rfs.String("code", "", "verification code (default: read it from the sandbox admin API)")
		var number string
		if len(rest) > 1 && !strings.HasPrefix(rest[1], "-") {
			number, rest = rest[1], append([]string{rest[0]}, rest[2:]...)
		}
		if err := rfs.Parse(rest[1:]); err != nil {
			return err
		}
		if number == "" && rfs.NArg() > 0 {
			number = rfs.Arg(0)
		}
		addrs := splitAddrs(*network)
		*admin = adminAddr(*admin, addrs)
		if *name == "" {
			*name = "Customer " + number
		}
		root, err := parseRootKey(*rootKey, *rootKeyFile)
		if err != nil {
			return err
		}
		rctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		if err := waphone.Register(rctx, waphone.RegisterOptions{Home: *home, Network: addrs, Admin: *admin, Number: number, Name: *name, Code: *code, Log: log, RootKey: root}); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "registered %s in %s\n", number, *home)
		return nil
	}
	if len(rest) > 0 {
		return fmt.Errorf("unknown command %q", rest[0])
	}
	p, err := waphone.Open(*home, waphone.Options{Log: log})
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	defer wg.Wait()
	runErr := make(chan error, 1)
	wg.Go(func() { runErr <- p.Run(ctx) })
	out := &output{w: stdout, json: *jsonMode}
	wg.Go(func() {
		for e := range p.Events() {
			out.event(e)
		}
	})
	// The stdin reader cannot be interrupted by ctx; it ends at EOF or when
	// the process exits, and it only calls into the phone.
	go readCommands(ctx, stdin, p, out)
	if !*jsonMode {
		fmt.Fprintf(stdout, "waphone %s. Type: /to NUMBER, then a message; /file PATH [TYPE] [CAPTION]; /read ID; /quit\n", p.Number())
	}
	err = <-runErr
	cancel()
	return err
}

// adminAddr is the sandbox admin address: admin, else the first network
// address's host on port 5280.
func adminAddr(admin string, network []string) string {
	if admin != "" || len(network) == 0 {
		return admin
	}
	host, _, _ := net.SplitHostPort(strings.TrimPrefix(network[0], "tls://"))
	return net.JoinHostPort(host, "5280")
}

// parseRootKey returns the root key given by flag or file, or nil for none.
func parseRootKey(key, file string) (ed25519.PublicKey, error) {
	switch {
	case key != "" && file != "":
		return nil, errors.New("give --root-key or --root-key-file, not both")
	case file != "":
		b, err := os.ReadFile(file)
		if err != nil {
			return nil, fmt.Errorf("--root-key-file: %w", err)
		}
		key = string(b)
	case key == "":
		return nil, nil
	}
	k, err := wire.ParseRootKey(key)
	if err != nil {
		return nil, fmt.Errorf("--root-key: %w", err)
	}
	return k, nil
}

func splitAddrs(s string) []string {
	var out []string
	for _, a := range strings.Split(s, ",") {
		if a = strings.TrimSpace(a); a != "" {
			out = append(out, a)
		}
	}
	return out
}

type output struct {
	mu   sync.Mutex
	w    io.Writer
	json bool
}

func (o *output) event(e waphone.Event) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.json {
		b, _ := json.Marshal(e)
		o.w.Write(append(b, '\n'))
		return
	}
	switch e.Event {
	case "message":
		reply := ""
		if e.Context != nil {
			reply = " (reply to " + e.Context.ID + ")"
		}
		if e.File != "" && e.Content.GetInteractive() == nil && e.Content.GetTemplate() == nil {
			fmt.Fprintf(o.w, "<< %s [%s] %s%s: [%s %s %s] %s\n", e.From, e.ID, e.Name, reply, e.Type, e.MimeType, e.File, e.Caption)
			return
		}
		if e.Type == "text" || e.Content == nil {
			fmt.Fprintf(o.w, "<< %s [%s] %s%s: %s\n", e.From, e.ID, e.Name, reply, e.Text)
			return
		}
		// Buttons and list rows are numbered: /choose ID N answers.
		fmt.Fprintf(o.w, "<< %s [%s] %s%s: %s\n", e.From, e.ID, e.Name, reply, message.Default.Terminal(e.Content))
		if e.File != "" {
			fmt.Fprintf(o.w, "   [header %s %s]\n", e.MimeType, e.File)
		}
		if e.Content.GetInteractive() != nil || len(message.QuickReplies(e.Content.GetTemplate())) > 0 {
			fmt.Fprintf(o.w, "   (answer with /choose %s N)\n", e.ID)
		}
	case "receipt":
		fmt.Fprintf(o.w, "   %s %s\n", e.ID, e.Status)
	case "queued":
		fmt.Fprintf(o.w, ">> %s [%s]\n", e.To, e.ID)
	case "ready":
		fmt.Fprintf(o.w, "-- online as %s\n", e.From)
	case "error":
		fmt.Fprintf(o.w, "!! %s %s\n", e.ID, e.Error)
	case "profile":
		fmt.Fprintf(o.w, "== %s: %s\n", e.Number, e.Name)
		if e.About != "" {
			fmt.Fprintf(o.w, "   about: %s\n", e.About)
		}
		if e.File != "" {
			fmt.Fprintf(o.w, "   photo: %s\n", e.File)
		}
		if len(e.Business) > 0 {
			fmt.Fprintf(o.w, "   business: %s\n", e.Business)
		}
	case "security_code_changed":
		fmt.Fprintf(o.w, "-- %s's security code changed\n", e.From)
	}
}

// savePhoto writes a profile photo to the phone's home and returns its
// path (media/<sha256>.jpg or .png).
func savePhoto(home string, pr waphone.Profile) (string, error) {
	ext := ".jpg"
	if pr.PhotoMime == "image/png" {
		ext = ".png"
	}
	dir := filepath.Join(home, "media")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", err
	}
	path := filepath.Join(dir, pr.PhotoSHA256+ext)
	return path, os.WriteFile(path, pr.Photo, 0o600)
}

type command struct {
	Cmd      string          `json:"cmd"`
	To       string          `json:"to"`
	Text     string          `json:"text"`
	ID       string          `json:"id"`
	ReplyTo  string          `json:"reply_to"`
	File     string          `json:"file"`
	Type     string          `json:"type"`
	Caption  string          `json:"caption"`
	Filename string          `json:"filename"`
	Location json.RawMessage `json:"location"`
	Contacts json.RawMessage `json:"contacts"`
	Reaction json.RawMessage `json:"reaction"`
	Choice   string          `json:"choice"`
	Number   string          `json:"number"`
}

// object returns the message type and object of a send command that
// carries one (location, contacts or reaction).
func (c command) object() (string, json.RawMessage) {
	for _, o := range []struct {
		name string
		raw  json.RawMessage
	}{{"location", c.Location}, {"contacts", c.Contacts}, {"reaction", c.Reaction}} {
		if len(o.raw) > 0 {
			return o.name, o.raw
		}
	}
	return "", nil
}

// fileCommand parses "/file PATH [TYPE] [CAPTION…]" for the chat to.
func fileCommand(to, args string) (command, error) {
	path, rest, _ := strings.Cut(strings.TrimSpace(args), " ")
	if path == "" {
		return command{}, errors.New("usage: /file PATH [TYPE] [CAPTION]")
	}
	c := command{Cmd: "send", To: to, File: path}
	rest = strings.TrimSpace(rest)
	first, after, _ := strings.Cut(rest, " ")
	if slices.Contains(media.Names(), first) {
		c.Type, rest = first, strings.TrimSpace(after)
	}
	c.Caption = rest
	return c, nil
}

func readCommands(ctx context.Context, stdin io.Reader, p *waphone.Phone, out *output) {
	sc := bufio.NewScanner(stdin)
	sc.Buffer(make([]byte, 64<<10), 64<<10)
	chat := ""
	for sc.Scan() && ctx.Err() == nil {
		line := strings.TrimSpace(sc.Text())
		if line == "" {
			continue
		}
		var c command
		if out.json {
			if err := json.Unmarshal([]byte(line), &c); err != nil {
				out.event(waphone.Event{Event: "error", Error: "bad command: " + err.Error()})
				continue
			}
		} else {
			switch {
			case line == "/quit":
				return
			case strings.HasPrefix(line, "/to "):
				chat = strings.TrimSpace(strings.TrimPrefix(line, "/to "))
				continue
			case strings.HasPrefix(line, "/profile"):
				number := strings.TrimSpace(strings.TrimPrefix(line, "/profile"))
				if number == "" {
					number = chat
				}
				c = command{Cmd: "profile", Number: number}
			case strings.HasPrefix(line, "/read "):
				c = command{Cmd: "read", ID: strings.TrimSpace(strings.TrimPrefix(line, "/read "))}
			case strings.HasPrefix(line, "/choose "):
				f := strings.Fields(strings.TrimPrefix(line, "/choose "))
				if len(f) != 2 {
					out.event(waphone.Event{Event: "error", Error: "usage: /choose MESSAGE_ID N"})
					continue
				}
				c = command{Cmd: "choose", ID: f[0], Choice: f[1]}
			case chat == "":
				out.event(waphone.Event{Event: "error", Error: "choose a chat first: /to NUMBER"})
				continue
			case strings.HasPrefix(line, "/location "):
				f := strings.Fields(strings.TrimPrefix(line, "/location "))
				if len(f) < 2 {
					out.event(waphone.Event{Event: "error", Error: "usage: /location LAT LON [NAME]"})
					continue
				}
				obj, _ := json.Marshal(map[string]any{"latitude": json.Number(f[0]), "longitude": json.Number(f[1]), "name": strings.Join(f[2:], " ")})
				c = command{Cmd: "send", To: chat, Location: obj}
			case strings.HasPrefix(line, "/react "):
				f := strings.Fields(strings.TrimPrefix(line, "/react "))
				if len(f) < 1 {
					out.event(waphone.Event{Event: "error", Error: "usage: /react MESSAGE_ID [EMOJI]"})
					continue
				}
				emoji := ""
				if len(f) > 1 {
					emoji = f[1]
				}
				obj, _ := json.Marshal(map[string]string{"message_id": f[0], "emoji": emoji})
				c = command{Cmd: "send", To: chat, Reaction: obj}
			case line == "/file" || strings.HasPrefix(line, "/file "):
				var err error
				if c, err = fileCommand(chat, strings.TrimPrefix(line, "/file")); err != nil {
					out.event(waphone.Event{Event: "error", Error: err.Error()})
					continue
				}
			default:
				c = command{Cmd: "send", To: chat, Text: line}
			}
		}
		switch c.Cmd {
		case "send":
			var id string
			var err error
			typ, obj := c.object()
			switch {
			case c.File != "":
				if c.Type == "" {
					c.Type = "document"
				}
				id, err = p.SendMediaReply(ctx, c.To, c.File, c.Type, c.Caption, c.Filename, c.ReplyTo, c.ID)
			case typ != "":
				id, err = p.Send(ctx, c.To, typ, obj, c.ReplyTo, c.ID)
			default:
				id, err = p.SendText(ctx, c.To, c.Text, c.ReplyTo, c.ID)
			}
			if err != nil {
				out.event(waphone.Event{Event: "error", ID: c.ID, Error: err.Error()})
				continue
			}
			out.event(waphone.Event{Event: "queued", ID: id, To: c.To})
		case "choose":
			id, err := p.Choose(ctx, c.ID, c.Choice)
			if err != nil {
				out.event(waphone.Event{Event: "error", ID: c.ID, Error: err.Error()})
				continue
			}
			out.event(waphone.Event{Event: "queued", ID: id})
		case "read":
			if err := p.Read(ctx, c.ID); err != nil {
				out.event(waphone.Event{Event: "error", ID: c.ID, Error: err.Error()})
			}
		case "profile":
			pr, err := p.Profile(ctx, c.Number)
			if err != nil {
				out.event(waphone.Event{Event: "error", Error: err.Error()})
				continue
			}
			if pr.Photo != nil {
				if f, err := savePhoto(p.Home(), pr); err == nil {
					e := pr.Event()
					e.File = f
					out.event(e)
					continue
				}
			}
			out.event(pr.Event())
		default:
			out.event(waphone.Event{Event: "error", Error: fmt.Sprintf("unknown command %q", c.Cmd)})
		}
	}
}
