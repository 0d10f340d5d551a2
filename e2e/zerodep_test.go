package e2e

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/openwaba/openwaba/chatd/waphone"
	"github.com/openwaba/openwaba/e2e/stack"
)

// runScript is scripts/run.sh (what `make run` runs) started by a test.
type runScript struct {
	cmd   *exec.Cmd
	lines *stack.LineReader
	log   string // its stderr: the processes' logs
	done  chan struct{}
	// webPhone is the web phone's port (WA_WEBPHONE_PORT).
	webPhone int
}

// startRunScript runs scripts/run.sh on dataDir and ports with an
// environment holding no WA_* variable but those given here: in particular
// no WA_DB_* one, so the stack must choose SQLite by itself.
func startRunScript(t *testing.T, bins stack.Binaries, dataDir string, p stack.Ports) *runScript {
	t.Helper()
	var env []string
	webPhone := stack.FreePort(t)
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "WA_") && !strings.HasPrefix(kv, "BIN=") {
			env = append(env, kv)
		}
	}
	for k, v := range map[string]string{
		"BIN": bins.Dir, "WA_DATA_DIR": dataDir, "WA_SANDBOX_AUTOREGISTER": "1", "WA_SANDBOX_ADMIN_PASSWORD": stack.AdminPassword,
		"WA_WEB_PORT": strconv.Itoa(p.Web), "WA_CORE_PORT": strconv.Itoa(p.Core), "WA_CHAT_PORT": strconv.Itoa(p.Chat),
		"WA_CHAT_FALLBACK_PORT": strconv.Itoa(p.Fallback), "WA_CHATD_ADMIN_PORT": strconv.Itoa(p.Admin),
		"WA_CHATD_MEDIA_PORT": strconv.Itoa(p.Media), "WA_WEB_ADDR": "127.0.0.1", "WA_CORE_ADDR": "127.0.0.1",
		"WA_CHATD_LISTEN_ADDR": "127.0.0.1", "WA_WEBPHONE_PORT": strconv.Itoa(webPhone),
	} {
		env = append(env, k+"="+v)
	}
	logFile, err := os.CreateTemp(t.TempDir(), "run-*.log")
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("bash", filepath.Join(stack.RepoRoot(t), "scripts", "run.sh"))
	cmd.Env = env
	cmd.Stderr = logFile
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	r := &runScript{cmd: cmd, lines: stack.NewLineReader(t, cmd), log: logFile.Name(), done: make(chan struct{}), webPhone: webPhone}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { cmd.Wait(); close(r.done) }()
	t.Cleanup(func() {
		r.stop()
		logFile.Close()
		if t.Failed() {
			b, _ := os.ReadFile(r.log)
			t.Logf("---- run.sh log ----\n%s", b)
		}
	})
	return r
}

// stop sends Ctrl-C's signal to run.sh and waits for it and its processes.
func (r *runScript) stop() {
	syscall.Kill(-r.cmd.Process.Pid, syscall.SIGINT)
	select {
	case <-r.done:
	case <-time.After(30 * time.Second):
		syscall.Kill(-r.cmd.Process.Pid, syscall.SIGKILL)
		<-r.done
	}
}

// TestZeroDependencyRun is the README's first command on a fresh machine:
// `make run` from an empty data dir with no database settings. The stack
// stores everything in SQLite files, registers the sandbox number itself
// (WA_SANDBOX_AUTOREGISTER=1) and completes the spine flow; after a restart
// the account, the settings and the conversation are still there; a second
// coreapp on the same files is refused. It starts no MySQL connection (CI
// runs it before MariaDB is started, see .ci/run).
func TestZeroDependencyRun(t *testing.T) {
	bins := stack.Build(t)
	dataDir := t.TempDir()
	ports := stack.FreePorts(t)
	run := startRunScript(t, bins, dataDir, ports)
	run.lines.WaitFor(3*time.Minute, "openwaba is running")
	run.lines.WaitFor(time.Second, "Storage: SQLite files in "+dataDir)
	run.lines.WaitFor(time.Second, "the sandbox number +15550100 is registered")
	// make run also starts the web phone, on loopback.
	webPhone := fmt.Sprintf("http://127.0.0.1:%d/", run.webPhone)
	run.lines.WaitFor(time.Second, "Web phone: "+webPhone)
	if resp, err := http.Get(webPhone + "api/phones"); err != nil || resp.StatusCode != 200 {
		t.Errorf("GET %sapi/phones: %v %v", webPhone, err, resp)
	} else {
		resp.Body.Close()
	}

	s := stack.Attach(t, ports)
	tok := s.Login()
	s.WaitHealth(tok, "connected", 30*time.Second)
	hook := stack.NewWebhook(t)
	if r := s.Do("PATCH", "/v1/settings/application", bearer(tok), map[string]any{
		"webhooks": map[string]any{"url": hook.URL, "message": map[string]bool{"delivered": true}},
	}); r.Status != 200 {
		t.Fatalf("PATCH settings = %d %s", r.Status, r.Raw)
	}
	home := filepath.Join(t.TempDir(), "phone")
	phone := s.OpenPhone(home, "15551234567", "Kerry Fisher", true)
	spineRoundTrip(t, s, tok, hook, phone, "first")

	for _, f := range []string{"openwaba.db", "chatd.db"} {
		if st, err := os.Stat(filepath.Join(dataDir, f)); err != nil || st.Size() == 0 {
			t.Errorf("SQLite file %s: %v", f, err)
		}
	}

	// A second coreapp on the same SQLite files is refused, clearly.
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	second := exec.CommandContext(ctx, bins.Path("coreapp"))
	second.Env = append(os.Environ(), "WA_DATA_DIR="+dataDir, "WA_CORE_PORT="+strconv.Itoa(stack.FreePort(t)),
		"WA_CHAT_ROOT_KEY_FILE="+filepath.Join(dataDir, "chat-root.pub"), "WA_CORE_ADDR=127.0.0.1",
		"WA_DB_ENGINE=", "WA_DB_HOSTNAME=", "WA_DB_DIR=", "WA_DB_NAME=", "WA_MEDIA_DIR=")
	out, err := second.CombinedOutput()
	if err == nil || !strings.Contains(string(out), "SQLite mode is a single node") {
		t.Errorf("second coreapp on the SQLite files: err = %v, output:\n%s", err, out)
	}

	// Restart on the same data dir: nothing is lost.
	run.stop()
	phone.Stop()
	run = startRunScript(t, bins, dataDir, ports)
	run.lines.WaitFor(3*time.Minute, "openwaba is running")
	run.lines.WaitFor(time.Second, "the sandbox number +15550100 is registered")
	tok = s.Login()
	s.WaitHealth(tok, "connected", 30*time.Second)
	r := s.Do("GET", "/v1/settings/application", bearer(tok), nil)
	if !strings.Contains(string(r.Raw), hook.URL) {
		t.Fatalf("webhook setting lost across the restart: %s", r.Raw)
	}
	phone = s.OpenPhone(home, "15551234567", "Kerry Fisher", false)
	spineRoundTrip(t, s, tok, hook, phone, "second")
}

// spineRoundTrip: the phone writes, the webhook gets it, the business
// replies, the phone gets the reply and the webhook its delivered status.
func spineRoundTrip(t *testing.T, s *stack.Stack, tok string, hook *stack.Webhook, phone *stack.Phone, tag string) {
	t.Helper()
	inID := phone.Text(bizWaID, "Hello business, "+tag)
	hook.Wait(30*time.Second, "inbound message "+tag, func(ps []stack.Payload) bool { return stack.InboundIDs(ps)[inID] > 0 })
	r := s.Do("POST", "/v1/messages", bearer(tok), map[string]any{
		"to": "15551234567", "type": "text", "text": map[string]any{"body": "Reply " + tag},
	})
	if r.Status != 201 {
		t.Fatalf("POST /v1/messages = %d %s", r.Status, r.Raw)
	}
	outID := r.Body["messages"].([]any)[0].(map[string]any)["id"].(string)
	msg := phone.WaitFor(30*time.Second, "the reply "+tag, func(e waphone.Event) bool { return e.Event == "message" && e.ID == outID })
	if msg.Text != "Reply "+tag || msg.From != bizWaID {
		t.Errorf("phone got %+v", msg)
	}
	hook.Wait(30*time.Second, "delivered "+tag, func(ps []stack.Payload) bool {
		return strings.Contains(strings.Join(stack.StatusesOf(ps, outID), ","), "delivered")
	})
}
