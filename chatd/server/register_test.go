package server

import (
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/openwaba/openwaba/chatd/session"
	"github.com/openwaba/openwaba/chatd/wire"
	chatdv1 "github.com/openwaba/openwaba/proto/gen/chatd/v1"
)

// iqCode returns the code of an IQ error (0 for success).
func iqCode(t *testing.T, err error) uint32 {
	t.Helper()
	if err == nil {
		return 0
	}
	var ie *session.IQError
	if !errors.As(err, &ie) {
		t.Fatalf("IQ failed without an IQ error: %v", err)
	}
	return ie.Code
}

// wrongCode returns a six-digit code that is not code.
func wrongCode(code string) string {
	if code == "000000" {
		return "111111"
	}
	return "000000"
}

// TestRegistration walks a registration: the code comes from the admin API,
// wrong codes are counted and answered 401, the fifth wrong code locks the
// pending registration (429 even for the right code), a new request resets
// it, another key cannot verify it (409), the right key and code register the
// number, and a repeated request by the same key says "registered".
func TestRegistration(t *testing.T) {
	t.Parallel()
	n := startNet(t, Config{})
	const number = "15550001001"
	key1, key2 := newKey(t), newKey(t)
	attempts := func() int {
		return count(t, n.db, "SELECT attempts FROM registrations WHERE number = ?", number)
	}

	var code string
	err := n.registration(t, number, key1, func(iq iqFunc) error {
		ctx := t.Context()
		res, err := iq(ctx, registerIQ(number, chatdv1.AccountKind_ACCOUNT_KIND_CONSUMER))
		if err != nil {
			return err
		}
		if got := res.GetRegisterResult().GetStatus(); got != "code_sent" {
			t.Errorf("register status = %q, want code_sent", got)
		}
		status, body := n.adminGet(t, "/sandbox/codes/"+number)
		if status != http.StatusOK || !regexp.MustCompile(`^[0-9]{6}$`).MatchString(body["code"]) {
			t.Fatalf("GET /sandbox/codes/%s = %d %v, want 200 and a 6-digit code", number, status, body)
		}
		code = body["code"]

		for i := 1; i <= maxVerifyAttempts; i++ {
			_, err := iq(ctx, verifyIQ(number, wrongCode(code)))
			if got := iqCode(t, err); got != 401 {
				t.Fatalf("wrong code #%d: IQ error code %d (%v), want 401", i, got, err)
			}
			if got := attempts(); got != i {
				t.Fatalf("after wrong code #%d: attempts = %d, want %d", i, got, i)
			}
		}
		_, err = iq(ctx, verifyIQ(number, code))
		if got := iqCode(t, err); got != 429 {
			t.Fatalf("right code after %d wrong ones: IQ error code %d (%v), want 429", maxVerifyAttempts, got, err)
		}

		// A new request issues a new code and resets the counter.
		if _, err := iq(ctx, registerIQ(number, chatdv1.AccountKind_ACCOUNT_KIND_CONSUMER)); err != nil {
			return err
		}
		if got := attempts(); got != 0 {
			t.Errorf("attempts after a new request = %d, want 0", got)
		}
		status, body = n.adminGet(t, "/sandbox/codes/"+number)
		if status != http.StatusOK {
			t.Fatalf("GET /sandbox/codes/%s = %d %v", number, status, body)
		}
		code = body["code"]
		_, err = iq(ctx, verifyIQ(number, "12345"))
		if got := iqCode(t, err); got != 400 {
			t.Errorf("5-digit code: IQ error code %d (%v), want 400", got, err)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("registration connection: %v", err)
	}

	// Another install cannot verify the code requested by key1.
	err = n.registration(t, number, key2, func(iq iqFunc) error {
		_, err := iq(t.Context(), verifyIQ(number, code))
		if got := iqCode(t, err); got != 409 {
			t.Errorf("verify with another key: IQ error code %d (%v), want 409", got, err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if got := count(t, n.db, "SELECT COUNT(*) FROM accounts"); got != 0 {
		t.Fatalf("accounts after failed verifications = %d, want 0", got)
	}

	err = n.registration(t, number, key1, func(iq iqFunc) error {
		if _, err := iq(t.Context(), verifyIQ(number, code)); err != nil {
			t.Errorf("verify with the right key and code: %v", err)
		}
		res, err := iq(t.Context(), registerIQ(number, chatdv1.AccountKind_ACCOUNT_KIND_CONSUMER))
		if err != nil {
			return err
		}
		if got := res.GetRegisterResult().GetStatus(); got != "registered" {
			t.Errorf("register by the key holding the number: status %q, want registered", got)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	var (
		pub  []byte
		kind int
		name string
	)
	if err := n.db.QueryRow("SELECT static_pub, kind, name FROM accounts WHERE number = ?", number).Scan(&pub, &kind, &name); err != nil {
		t.Fatalf("account row: %v", err)
	}
	if diff := cmp.Diff(key1.Public, pub); diff != "" {
		t.Errorf("registered static key mismatch (-want +got):\n%s", diff)
	}
	if kind != int(chatdv1.AccountKind_ACCOUNT_KIND_CONSUMER) || name != "name of "+number {
		t.Errorf("account kind, name = %d, %q", kind, name)
	}
	// The code is used up.
	if status, body := n.adminGet(t, "/sandbox/codes/"+number); status != http.StatusNotFound {
		t.Errorf("GET code after verification = %d %v, want 404", status, body)
	}
}

func TestRegisterRequestValidation(t *testing.T) {
	t.Parallel()
	n := startNet(t, Config{})
	tests := []struct {
		name string
		req  *chatdv1.RegisterRequest
		want uint32
	}{
		{"bad number", &chatdv1.RegisterRequest{Number: "12ab5", Kind: chatdv1.AccountKind_ACCOUNT_KIND_CONSUMER}, 400},
		{"no kind", &chatdv1.RegisterRequest{Number: "15550001002"}, 400},
		{"bad method", &chatdv1.RegisterRequest{Number: "15550001002", Kind: chatdv1.AccountKind_ACCOUNT_KIND_CONSUMER, Method: "pigeon"}, 400},
		{"voice", &chatdv1.RegisterRequest{Number: "15550001002", Kind: chatdv1.AccountKind_ACCOUNT_KIND_BUSINESS, Method: "voice"}, 0},
	}
	err := n.registration(t, "15550001002", newKey(t), func(iq iqFunc) error {
		for _, tt := range tests {
			_, err := iq(t.Context(), &chatdv1.IQ{Type: chatdv1.IQType_IQ_TYPE_SET, Payload: &chatdv1.IQ_Register{Register: tt.req}})
			if got := iqCode(t, err); got != tt.want {
				t.Errorf("%s: IQ error code %d (%v), want %d", tt.name, got, err, tt.want)
			}
		}
		// No verification without a pending registration.
		_, err := iq(t.Context(), verifyIQ("15550001003", "123456"))
		if got := iqCode(t, err); got != 404 {
			t.Errorf("verify without a request: IQ error code %d (%v), want 404", got, err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestAdminAPI(t *testing.T) {
	t.Parallel()
	n := startNet(t, Config{})
	if err := n.registration(t, "15550001004", newKey(t), func(iq iqFunc) error {
		_, err := iq(t.Context(), registerIQ("15550001004", chatdv1.AccountKind_ACCOUNT_KIND_CONSUMER))
		return err
	}); err != nil {
		t.Fatal(err)
	}
	code := func(number string) string {
		var c string
		if err := n.db.QueryRow("SELECT code FROM registrations WHERE number = ?", number).Scan(&c); err != nil {
			t.Fatal(err)
		}
		return c
	}("15550001004")

	tests := []struct {
		path       string
		wantStatus int
		wantBody   map[string]string
	}{
		{"/sandbox/codes/15550001004", http.StatusOK, map[string]string{"code": code}},
		{"/sandbox/codes/15550009999", http.StatusNotFound, map[string]string{"error": "no pending registration for this number"}},
		{"/sandbox/codes/12ab", http.StatusBadRequest, map[string]string{"error": "number must be 5 to 20 digits"}},
		{"/sandbox/codes/123456789012345678901", http.StatusBadRequest, map[string]string{"error": "number must be 5 to 20 digits"}},
		{"/healthz", http.StatusOK, map[string]string{"raw": "ok\n"}},
		{"/sandbox/root-key", http.StatusOK, map[string]string{"root_key": wire.EncodeRootKey(n.rootKey)}},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			status, body := n.adminGet(t, tt.path)
			if status != tt.wantStatus {
				t.Errorf("GET %s status = %d, want %d", tt.path, status, tt.wantStatus)
			}
			if diff := cmp.Diff(tt.wantBody, body); diff != "" {
				t.Errorf("GET %s body mismatch (-want +got):\n%s", tt.path, diff)
			}
		})
	}
}

// TestReregistrationLogsOutOldKey checks that a new install taking over a
// number ends the old key's live session with LOGGED_OUT and that the old key
// can no longer log in.
func TestReregistrationLogsOutOldKey(t *testing.T) {
	t.Parallel()
	n := startNet(t, Config{})
	const number = "15550001005"
	oldKey := n.register(t, number, chatdv1.AccountKind_ACCOUNT_KIND_CONSUMER)
	old := n.dial(t, number, oldKey, clientOpts{}).connected(t)

	newKey := n.register(t, number, chatdv1.AccountKind_ACCOUNT_KIND_CONSUMER)
	if err := old.end(t); !errors.Is(err, session.ErrLoggedOut) {
		t.Fatalf("old key's session ended with %v, want ErrLoggedOut", err)
	}
	again := n.dial(t, number, oldKey, clientOpts{})
	if err := again.end(t); !refusal(err, chatdv1.FailureReason_FAILURE_REASON_UNAUTHORIZED) {
		t.Fatalf("old key's new login = %v, want ErrRefused UNAUTHORIZED", err)
	}
	n.dial(t, number, newKey, clientOpts{}).connected(t)
}

func TestLoginRefused(t *testing.T) {
	t.Parallel()
	n := startNet(t, Config{})
	const number = "15550001006"
	key := n.register(t, number, chatdv1.AccountKind_ACCOUNT_KIND_CONSUMER)
	tests := []struct {
		name   string
		number string
		key    bool // use the registered key
		shard  uint64
		want   chatdv1.FailureReason
	}{
		{"unknown number", "15550009998", true, 0, chatdv1.FailureReason_FAILURE_REASON_NOT_REGISTERED},
		{"wrong static key", number, false, 0, chatdv1.FailureReason_FAILURE_REASON_UNAUTHORIZED},
		{"no such shard", number, true, 1, chatdv1.FailureReason_FAILURE_REASON_BAD_REQUEST},
		{"malformed number", "15-55", true, 0, chatdv1.FailureReason_FAILURE_REASON_BAD_REQUEST},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			k := key
			if !tt.key {
				k = newKey(t)
			}
			err := n.dial(t, tt.number, k, clientOpts{shard: tt.shard}).end(t)
			if !refusal(err, tt.want) {
				t.Errorf("login = %v, want ErrRefused %s", err, tt.want)
			}
		})
	}
	// A registration connection may not send anything but IQs.
	err := n.registration(t, "15550009997", newKey(t), func(iq iqFunc) error {
		_, err := iq(t.Context(), &chatdv1.IQ{Type: chatdv1.IQType_IQ_TYPE_GET, Payload: &chatdv1.IQ_ContactCheck{ContactCheck: &chatdv1.ContactCheck{Numbers: []string{number}}}})
		if err == nil {
			return fmt.Errorf("contact check on a registration connection answered")
		}
		return nil
	})
	if err != nil {
		t.Error(err)
	}
}

// TestEpochFencing: a newer epoch replaces the slot's connection, an older
// one is refused, even after the newer one is gone.
func TestEpochFencing(t *testing.T) {
	t.Parallel()
	n := startNet(t, Config{})
	const number = "15550001007"
	key := n.register(t, number, chatdv1.AccountKind_ACCOUNT_KIND_BUSINESS)

	c5 := n.dial(t, number, key, clientOpts{epoch: 5}).connected(t)
	c7 := n.dial(t, number, key, clientOpts{epoch: 7}).connected(t)
	if err := c5.end(t); !errors.Is(err, session.ErrReplaced) {
		t.Fatalf("epoch 5 session ended with %v, want ErrReplaced", err)
	}
	c6 := n.dial(t, number, key, clientOpts{epoch: 6})
	if err := c6.end(t); !refusal(err, chatdv1.FailureReason_FAILURE_REASON_STALE_EPOCH) {
		t.Fatalf("epoch 6 login = %v, want ErrRefused STALE_EPOCH", err)
	}
	if got := c7.sess.State(); got != session.Connected {
		t.Errorf("epoch 7 session state after the stale login = %v, want connected", got)
	}
	if got := count(t, n.db, "SELECT epoch FROM slots WHERE number = ? AND shard = 0", number); got != 7 {
		t.Errorf("slot epoch = %d, want 7", got)
	}

	// The fence is durable: with epoch 7 gone, 6 is still refused.
	c7.stop(t)
	if err := n.dial(t, number, key, clientOpts{epoch: 6}).end(t); !refusal(err, chatdv1.FailureReason_FAILURE_REASON_STALE_EPOCH) {
		t.Fatalf("epoch 6 login after 7 left = %v, want ErrRefused STALE_EPOCH", err)
	}
	n.dial(t, number, key, clientOpts{epoch: 7}).connected(t)
}
