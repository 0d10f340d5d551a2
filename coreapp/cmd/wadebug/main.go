// Command wadebug checks an openwaba deployment from the operator's host,
// as on-prem's WADebug does: it reads coreapp's configuration (the same
// WA_* environment and --config file) and checks, one line each, what
// coreapp needs:
//
//   - database: MySQL (or the SQLite file) answers, and its schema is the one
//     this build knows;
//
//   - chat network: every chat address (5222, the 443 fallback, through
//     HTTPS_PROXY when it is set) answers and proves to be the network, with
//     a certificate from the pinned root key;
//
//   - media volume: WA_MEDIA_DIR is writable and has room;
//
//   - webhooks: every number's webhook URL answers a test POST
//     ({"wadebug_webhook_test":"test"}, as WADebug sends) with 200 in time;
//
//   - certificates: the webapps' HTTPS certificate is not about to expire.
//
//     wadebug [--config FILE] [--json] [--timeout 10s]
//
// Exit status 1 when a check failed (a warning does not fail).
package main

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/x509"
	"database/sql"
	"encoding/json"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/openwaba/openwaba/chatd/session"
	"github.com/openwaba/openwaba/chatd/wire"
	"github.com/openwaba/openwaba/coreapp/config"
	"github.com/openwaba/openwaba/coreapp/egress"
	"github.com/openwaba/openwaba/coreapp/settings"
	"github.com/openwaba/openwaba/coreapp/webhook"
	"github.com/openwaba/openwaba/db"
	"github.com/openwaba/openwaba/db/clusterkeys"
	"github.com/openwaba/openwaba/db/keystore"
)

// Result is one check's outcome.
type Result struct {
	Check  string `json:"check"`
	Status string `json:"status"` // ok, warn, fail
	Detail string `json:"detail"`
	Fix    string `json:"fix,omitempty"`
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(run(ctx, os.Stdout, os.Stderr, os.Args[1:]))
}

// minFree is the free space under which the media volume is a warning.
const minFree = 1 << 30

func run(ctx context.Context, stdout, stderr io.Writer, args []string) int {
	fs := flag.NewFlagSet("wadebug", flag.ContinueOnError)
	fs.SetOutput(stderr)
	file := fs.String("config", os.Getenv("WA_CONFIG_FILE"), "coreapp's configuration file")
	jsonOut := fs.Bool("json", false, "print the results as one JSON array")
	timeout := fs.Duration("timeout", 10*time.Second, "time each check may take")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	var results []Result
	add := func(r Result) { results = append(results, r) }
	cfg, err := config.Load(*file)
	if err != nil {
		add(Result{"configuration", "fail", err.Error(), "set the WA_* variables coreapp uses (README: Configuration)"})
		return report(stdout, *jsonOut, results)
	}
	d, dbOK := checkDB(ctx, cfg, *timeout, add)
	if d != nil {
		defer d.Close()
	}
	checkChat(ctx, cfg, *timeout, add)
	checkMedia(cfg, add)
	if dbOK {
		ks, err := keystore.Open(cfg.KeystoreSecret, cfg.DataDir)
		if err != nil {
			add(Result{"keystore", "warn", err.Error(), "set WA_KEYSTORE_SECRET (or WA_DATA_DIR) as coreapp has it, to check the certificates"})
		}
		checkWebhooks(ctx, d, ks, cfg.WebhookAllowPrivate, *timeout, add)
		if ks != nil {
			checkCerts(ctx, d, ks, add)
		}
	}
	return report(stdout, *jsonOut, results)
}

func report(w io.Writer, jsonOut bool, results []Result) int {
	code := 0
	for _, r := range results {
		if r.Status == "fail" {
			code = 1
		}
	}
	if jsonOut {
		b, _ := json.MarshalIndent(results, "", "  ")
		fmt.Fprintf(w, "%s\n", b)
		return code
	}
	for _, r := range results {
		line := fmt.Sprintf("[%s] %s: %s", map[string]string{"ok": "OK", "warn": "WARN", "fail": "FAIL"}[r.Status], r.Check, r.Detail)
		if r.Fix != "" {
			line += " (fix: " + r.Fix + ")"
		}
		fmt.Fprintln(w, line)
	}
	return code
}

func checkDB(ctx context.Context, cfg config.Config, timeout time.Duration, add func(Result)) (*sql.DB, bool) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	if cfg.DB.IsSQLite() {
		if _, err := os.Stat(filepath.Join(cfg.DB.Dir, cfg.DB.Name+".db")); err != nil {
			add(Result{"database", "fail", err.Error(), "start coreapp once (it creates the SQLite file) or point WA_DB_DIR at it"})
			return nil, false
		}
	}
	d, err := db.Open(ctx, cfg.DB, slog.New(slog.DiscardHandler))
	if err != nil {
		add(Result{"database", "fail", err.Error(), "check that MySQL runs and WA_DB_HOSTNAME, WA_DB_PORT, WA_DB_USERNAME and WA_DB_PASSWORD reach it"})
		return nil, false
	}
	add(Result{"database", "ok", cfg.DB.Engine + " answers", ""})
	applied, known, err := db.SchemaVersion(ctx, d, db.Core)
	switch {
	case err != nil:
		add(Result{"schema", "fail", err.Error(), "start coreapp: it applies the schema"})
	case applied < known:
		add(Result{"schema", "fail", fmt.Sprintf("version %d, this build knows %d", applied, known), "start this version's coreapp: it migrates the schema"})
	case applied > known:
		add(Result{"schema", "warn", fmt.Sprintf("version %d, newer than this build's %d", applied, known), "run the wadebug of the coreapp version deployed"})
	default:
		add(Result{"schema", "ok", fmt.Sprintf("version %d", applied), ""})
	}
	return d, err == nil
}

func checkChat(ctx context.Context, cfg config.Config, timeout time.Duration, add func(Result)) {
	kctx, cancel := context.WithTimeout(ctx, timeout)
	root, err := cfg.RootKey(kctx, func() {})
	cancel()
	if err != nil {
		add(Result{"chat network", "fail", "no root key: " + err.Error(), "set WA_CHAT_ROOT_KEY or WA_CHAT_ROOT_KEY_FILE to the network's root public key"})
		return
	}
	via := ""
	if p := os.Getenv("HTTPS_PROXY") + os.Getenv("https_proxy"); p != "" {
		via = " through the proxy"
	}
	for _, addr := range cfg.ChatAddrs() {
		err := session.Probe(ctx, addr, ed25519.PublicKey(root), timeout)
		switch {
		case err == nil:
			add(Result{"chat network " + addr, "ok", "reachable" + via + ", certificate verified against the pinned root key " + wire.EncodeRootKey(root), ""})
		case errors.Is(err, wire.ErrUntrustedServer):
			add(Result{"chat network " + addr, "fail", err.Error(), "the server there is not the network the root key names: check WA_CHAT_HOST and WA_CHAT_ROOT_KEY (or a proxy in the way)"})
		default:
			add(Result{"chat network " + addr, "fail", err.Error(), "open outbound TCP to WA_CHAT_HOST on WA_CHAT_PORT (5222) and WA_CHAT_FALLBACK_PORT (443), or set HTTPS_PROXY"})
		}
	}
}

func checkMedia(cfg config.Config, add func(Result)) {
	f, err := os.CreateTemp(cfg.MediaDir, ".wadebug-*")
	if err != nil {
		add(Result{"media volume", "fail", err.Error(), "mount the media volume at WA_MEDIA_DIR, writable by coreapp's user"})
		return
	}
	name := f.Name()
	_, werr := f.Write([]byte("wadebug"))
	f.Close()
	os.Remove(name)
	if werr != nil {
		add(Result{"media volume", "fail", werr.Error(), "the media volume is full or read-only"})
		return
	}
	var st syscall.Statfs_t
	if err := syscall.Statfs(cfg.MediaDir, &st); err == nil {
		free := int64(st.Bavail) * int64(st.Bsize)
		if free < minFree {
			add(Result{"media volume", "warn", fmt.Sprintf("%s writable, %d MiB free", cfg.MediaDir, free>>20), "give the media volume more room, or collect unused media: PUT /v1/services/media/gc"})
			return
		}
		add(Result{"media volume", "ok", fmt.Sprintf("%s writable, %d MiB free", cfg.MediaDir, free>>20), ""})
		return
	}
	add(Result{"media volume", "ok", cfg.MediaDir + " writable", ""})
}

// checkWebhooks posts WADebug's test body to every number's webhook URL,
// as the dispatcher posts (webhook.Policies, with the webhook CA bundle).
func checkWebhooks(ctx context.Context, d *sql.DB, ks *keystore.Keystore, allowPrivate bool, timeout time.Duration, add func(Result)) {
	rows, err := d.QueryContext(ctx, "SELECT id, wa_id FROM accounts WHERE state = 'verified' ORDER BY wa_id")
	if err != nil {
		add(Result{"webhooks", "fail", err.Error(), "check the database"})
		return
	}
	type hook struct {
		id        int64
		waID, url string
		byTenant  bool
	}
	var hooks []hook
	for rows.Next() {
		var h hook
		if err := rows.Scan(&h.id, &h.waID); err != nil {
			rows.Close()
			add(Result{"webhooks", "fail", err.Error(), "check the database"})
			return
		}
		hooks = append(hooks, h)
	}
	rows.Close()
	st := settings.NewStore(d)
	for i, h := range hooks {
		app, err := st.Get(ctx, h.id)
		if err != nil {
			add(Result{"webhook of " + h.waID, "fail", err.Error(), "check the database"})
			continue
		}
		hooks[i].url, hooks[i].byTenant = app.Webhooks.URL, app.Webhooks.ByTenant
	}
	if len(hooks) == 0 {
		add(Result{"webhooks", "warn", "no registered number", "register a number (POST /v1/account)"})
		return
	}
	admin, tenant := webhook.Policies(allowPrivate)
	if ks != nil {
		if b, err := clusterkeys.Get(ctx, d, ks, clusterkeys.WebhookCA); err == nil {
			if roots, err := webhook.Roots(b); err == nil {
				admin.RootCAs, tenant.RootCAs = roots, roots
			}
		}
	}
	admin.Timeout, tenant.Timeout = timeout, timeout
	for _, h := range hooks {
		client := admin.Client()
		if h.byTenant {
			client = tenant.Client()
		}
		name := "webhook of " + h.waID
		if h.url == "" {
			add(Result{name, "warn", "no webhook URL", `set one: PATCH /v1/settings/application {"webhooks":{"url":"https://…"}}`})
			continue
		}
		shown := egress.RedactURL(h.url)
		start := time.Now()
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, h.url, bytes.NewReader([]byte(`{"wadebug_webhook_test":"test"}`)))
		if err != nil {
			add(Result{name, "fail", err.Error(), "set a valid https URL"})
			continue
		}
		req.Header.Set("Content-Type", "application/json")
		resp, err := client.Do(req)
		if err != nil {
			add(Result{name, "fail", shown + ": " + egress.Describe(err), "the receiver must answer within the timeout; for a private CA upload it: POST /v1/certificates/webhooks/ca"})
			continue
		}
		resp.Body.Close()
		took := time.Since(start).Round(time.Millisecond)
		if resp.StatusCode != http.StatusOK {
			add(Result{name, "fail", fmt.Sprintf("%s answered %d in %s", shown, resp.StatusCode, took), "the receiver must answer 200 (anything else is a failure, and the event is sent again)"})
			continue
		}
		add(Result{name, "ok", fmt.Sprintf("%s answered 200 in %s", shown, took), ""})
	}
}

// certWarnBefore is how close to its expiry a certificate is a warning.
const certWarnBefore = 30 * 24 * time.Hour

func checkCerts(ctx context.Context, d *sql.DB, ks *keystore.Keystore, add func(Result)) {
	name := "uploaded"
	pemBytes, err := clusterkeys.Get(ctx, d, ks, clusterkeys.WebExternalCert)
	if errors.Is(err, clusterkeys.ErrNotFound) {
		name = "generated"
		pemBytes, err = clusterkeys.Get(ctx, d, ks, clusterkeys.WebCert)
	}
	if err != nil {
		if errors.Is(err, clusterkeys.ErrNotFound) {
			add(Result{"web certificate", "warn", "none yet", "start a webapp: it creates one"})
			return
		}
		add(Result{"web certificate", "fail", err.Error(), "the keystore secret must be the deployment's (WA_KEYSTORE_SECRET)"})
		return
	}
	var leaf *x509.Certificate
	for rest := pemBytes; leaf == nil; {
		var blk *pem.Block
		if blk, rest = pem.Decode(rest); blk == nil {
			break
		}
		if blk.Type == "CERTIFICATE" {
			leaf, _ = x509.ParseCertificate(blk.Bytes)
		}
	}
	if leaf == nil {
		add(Result{"web certificate", "fail", "the stored certificate does not parse", "upload a certificate again: POST /v1/certificates/external"})
		return
	}
	left := time.Until(leaf.NotAfter)
	detail := fmt.Sprintf("%s, for %v, expires %s", name, leaf.DNSNames, leaf.NotAfter.UTC().Format(time.RFC3339))
	switch {
	case left <= 0:
		add(Result{"web certificate", "fail", detail + " (expired)", "upload a valid certificate: POST /v1/certificates/external (a generated one renews itself)"})
	case left < certWarnBefore:
		add(Result{"web certificate", "warn", detail, "renew it before it expires: POST /v1/certificates/external"})
	default:
		add(Result{"web certificate", "ok", detail, ""})
	}
}
