package e2e

import (
	"encoding/base64"
	"encoding/json"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/openwaba/openwaba/db/clusterkeys"
	"github.com/openwaba/openwaba/db/dbtest"
	"github.com/openwaba/openwaba/db/keystore"
	"github.com/openwaba/openwaba/e2e/stack"
	"github.com/openwaba/openwaba/webapp/webtls/certtest"
)

type debugResult struct {
	Check, Status, Detail, Fix string
}

// wadebug runs the wadebug command with coreapp's environment (plus
// extra) and returns its results by check and its exit status.
func wadebug(t *testing.T, s *stack.Stack, extra ...string) (map[string]debugResult, int) {
	t.Helper()
	cmd := exec.Command(s.Bins.Path("wadebug"), "--json", "--timeout", "5s")
	cmd.Env = append(s.CoreEnviron(0), extra...)
	out, err := cmd.Output()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	var rs []debugResult
	if err := json.Unmarshal(out, &rs); err != nil {
		t.Fatalf("wadebug printed %s: %v", out, err)
	}
	m := map[string]debugResult{}
	for _, r := range rs {
		m[r.Check] = r
	}
	return m, code
}

// TestWadebug: every check passes on a running stack, and each fails with
// its reason and a fix when what it checks is broken.
func TestWadebug(t *testing.T) {
	s, _, hook := encStack(t, stack.Options{})
	rs, code := wadebug(t, s)
	if code != 0 {
		t.Errorf("wadebug exit %d on a healthy stack: %+v", code, rs)
	}
	chat := 0
	for name, r := range rs {
		if r.Status == "fail" {
			t.Errorf("%s failed on a healthy stack: %s", name, r.Detail)
		}
		if strings.HasPrefix(name, "chat network ") && r.Status == "ok" && strings.Contains(r.Detail, "certificate verified") {
			chat++
		}
	}
	for _, want := range []string{"database", "schema", "media volume", "webhook of " + bizWaID, "web certificate"} {
		if rs[want].Status != "ok" {
			t.Errorf("%s = %+v, want ok", want, rs[want])
		}
	}
	if chat < 2 {
		t.Errorf("%d chat addresses verified, want every one (the port and its fallback): %+v", chat, rs)
	}

	// The receiver fails: the webhook check says so.
	hook.SetFailing(true)
	rs, code = wadebug(t, s)
	if r := rs["webhook of "+bizWaID]; code != 1 || r.Status != "fail" || !strings.Contains(r.Detail, "answered 503") || r.Fix == "" {
		t.Errorf("with a failing receiver: exit %d, %+v", code, r)
	}
	hook.SetFailing(false)

	// The network is away.
	s.Chatd.Stop()
	rs, code = wadebug(t, s)
	failed := 0
	for name, r := range rs {
		if strings.HasPrefix(name, "chat network ") && r.Status == "fail" && strings.Contains(r.Detail, "connect") && strings.Contains(r.Fix, "5222") {
			failed++
		}
	}
	if code != 1 || failed != chat {
		t.Errorf("with chatd stopped: exit %d, %d chat checks failed: %+v", code, failed, rs)
	}
	s.StartChatd()

	// An uploaded certificate that expired.
	ks, err := keystore.New(mustBase64(t, s.KeystoreSecret))
	if err != nil {
		t.Fatal(err)
	}
	ca := certtest.NewCA(t, "Expired CA")
	old := ca.Issue(t, []string{"localhost"}, time.Now().Add(-48*time.Hour), time.Now().Add(-time.Hour))
	d := dbtest.Open(t, s.CoreDB)
	if err := clusterkeys.Put(t.Context(), d, ks, clusterkeys.WebExternalCert, append(old.KeyPEM, old.CertPEM...)); err != nil {
		t.Fatal(err)
	}
	rs, code = wadebug(t, s)
	if r := rs["web certificate"]; code != 1 || r.Status != "fail" || !strings.Contains(r.Detail, "expired") || r.Fix == "" {
		t.Errorf("with an expired certificate: exit %d, %+v", code, r)
	}
	if err := clusterkeys.Delete(t.Context(), d, clusterkeys.WebExternalCert); err != nil {
		t.Fatal(err)
	}

	// The media volume is not mounted.
	rs, code = wadebug(t, s, "WA_MEDIA_DIR=/nonexistent/wamedia")
	if r := rs["media volume"]; code != 1 || r.Status != "fail" || !strings.Contains(r.Fix, "WA_MEDIA_DIR") {
		t.Errorf("with no media volume: exit %d, %+v", code, r)
	}

	// The database is not where the configuration says.
	bad := "WA_DB_PORT=1"
	if dbtest.SQLite() {
		bad = "WA_DB_DIR=" + t.TempDir()
	}
	rs, code = wadebug(t, s, bad)
	if r := rs["database"]; code != 1 || r.Status != "fail" || r.Fix == "" {
		t.Errorf("with the database away: exit %d, %+v", code, r)
	}
}

func mustBase64(t *testing.T, s string) []byte {
	t.Helper()
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
