// Package account keeps the business numbers (accounts) a deployment hosts:
// resolving an account reference, registering a number on the chat network
// (a code is sent, then verified) and the account's network credential.
//
// A Store is safe for concurrent use.
package account

import (
	"context"
	"crypto/ed25519"
	"database/sql"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/openwaba/openwaba/api/phone"
	"github.com/openwaba/openwaba/chatd/session"
	"github.com/openwaba/openwaba/chatd/wire"
	"github.com/openwaba/openwaba/db"
	"github.com/openwaba/openwaba/db/keystore"
	chatdv1 "github.com/openwaba/openwaba/proto/gen/chatd/v1"
)

// States of an account.
const (
	StatePending  = "pending"
	StateVerified = "verified"
)

// Account is one registered (or registering) business number.
type Account struct {
	ID          int64
	WaID        string
	CC          string
	PhoneNumber string
	State       string
	VName       string
	Shards      int
	// ReshardingTo is the shard count a change in progress goes to (0:
	// none); the account's slots stay stopped until it is done.
	ReshardingTo int
}

// Verified reports whether the number finished registration.
func (a Account) Verified() bool { return a.State == StateVerified }

// Errors.
var (
	ErrNotFound       = errors.New("no such account")
	ErrNoAccount      = errors.New("no phone number is registered")
	ErrNoPending      = errors.New("no registration is pending; request a code with POST /v1/account first")
	ErrAmbiguous      = errors.New("several registrations are pending; name the number")
	ErrWrongCode      = errors.New("the verification code is wrong")
	ErrTooManyCodes   = errors.New("too many wrong codes; request a new code")
	ErrNetwork        = errors.New("the chat network cannot be reached")
	ErrNetworkRefused = errors.New("the chat network refused the registration")
)

// Store reads and writes accounts. It caches resolved references for
// CacheTTL, so an API call does not cost a query to find its account.
type Store struct {
	db  *sql.DB
	log *slog.Logger
	// chatAddrs are the chat network addresses, in dial order.
	chatAddrs []string
	// rootKey is the chat network's root key, which chatd must prove it
	// belongs to.
	rootKey ed25519.PublicKey
	ks      *keystore.Keystore

	mu    sync.Mutex // guards cache
	cache map[string]cachedAccount
}

type cachedAccount struct {
	a  Account
	at time.Time
}

// CacheTTL is how long a resolved account is served from memory; a change
// made on another node is seen within it.
const CacheTTL = 2 * time.Second

// NewStore returns a Store; chatAddrs and rootKey are used for registration
// connections.
// Its network credential (the Noise static private key) is sealed by ks.
func NewStore(d *sql.DB, log *slog.Logger, chatAddrs []string, rootKey ed25519.PublicKey, ks *keystore.Keystore) *Store {
	return &Store{db: d, log: log, chatAddrs: chatAddrs, rootKey: rootKey, ks: ks, cache: map[string]cachedAccount{}}
}

func (s *Store) forget() {
	s.mu.Lock()
	clear(s.cache)
	s.mu.Unlock()
}

const columns = "id, wa_id, cc, phone_number, state, vname, shards, resharding_to"

func scan(r interface{ Scan(...any) error }) (Account, error) {
	var a Account
	err := r.Scan(&a.ID, &a.WaID, &a.CC, &a.PhoneNumber, &a.State, &a.VName, &a.Shards, &a.ReshardingTo)
	return a, err
}

// Resolve returns the account of waID, or the default account when waID is
// empty: the first verified one, else the first pending one.
func (s *Store) Resolve(ctx context.Context, waID string) (Account, error) {
	s.mu.Lock()
	c, ok := s.cache[waID]
	s.mu.Unlock()
	if ok && time.Since(c.at) < CacheTTL {
		return c.a, nil
	}
	a, err := s.resolve(ctx, waID)
	if err == nil {
		s.mu.Lock()
		if len(s.cache) > 10_000 {
			clear(s.cache)
		}
		s.cache[waID] = cachedAccount{a, time.Now()}
		s.mu.Unlock()
	}
	return a, err
}

// ResolveFresh is Resolve without the cache: it reads what another node
// may have just written (the admin endpoints that read an account back).
func (s *Store) ResolveFresh(ctx context.Context, waID string) (Account, error) {
	return s.resolve(ctx, waID)
}

func (s *Store) resolve(ctx context.Context, waID string) (Account, error) {
	var row *sql.Row
	if waID != "" {
		row = s.db.QueryRowContext(ctx, "SELECT "+columns+" FROM accounts WHERE wa_id = ?", waID)
	} else {
		row = s.db.QueryRowContext(ctx, "SELECT "+columns+" FROM accounts ORDER BY state = 'verified' DESC, id LIMIT 1")
	}
	a, err := scan(row)
	if errors.Is(err, sql.ErrNoRows) {
		if waID != "" {
			return a, fmt.Errorf("account %s: %w", waID, ErrNotFound)
		}
		return a, ErrNoAccount
	}
	return a, err
}

// ByID returns an account.
func (s *Store) ByID(ctx context.Context, id int64) (Account, error) {
	a, err := scan(s.db.QueryRowContext(ctx, "SELECT "+columns+" FROM accounts WHERE id = ?", id))
	if errors.Is(err, sql.ErrNoRows) {
		return a, fmt.Errorf("account %d: %w", id, ErrNotFound)
	}
	return a, err
}

// Verified lists the registered accounts.
func (s *Store) Verified(ctx context.Context) ([]Account, error) {
	rows, err := s.db.QueryContext(ctx, "SELECT "+columns+" FROM accounts WHERE state = 'verified' ORDER BY id")
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []Account
	for rows.Next() {
		a, err := scan(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, a)
	}
	return out, rows.Err()
}

// RegisterRequest is POST /v1/account.
type RegisterRequest struct {
	CC, PhoneNumber, Method, Cert, Pin string
}

// RegisterResult says whether a code was sent.
type RegisterResult struct {
	AlreadyRegistered bool
	VName             string
	Account           Account
}

// Register starts registering a number: it records the account as pending
// and asks the network to send a code. A number this deployment already
// registered answers AlreadyRegistered.
func (s *Store) Register(ctx context.Context, req RegisterRequest) (RegisterResult, error) {
	waID := req.CC + req.PhoneNumber
	if !phone.Valid(waID) {
		return RegisterResult{}, fmt.Errorf("number %q is not 5 to 20 digits", waID)
	}
	vname := vnameFromCert(req.Cert, waID)
	var acct Account
	err := db.Tx(ctx, s.db, func(tx *sql.Tx) error {
		a, err := scan(tx.QueryRowContext(ctx, "SELECT "+columns+" FROM accounts WHERE wa_id = ? FOR UPDATE", waID))
		if err == nil {
			if !a.Verified() {
				_, err = tx.ExecContext(ctx, "UPDATE accounts SET vname = ?, cert = ? WHERE id = ?", vname, req.Cert, a.ID)
				a.VName = vname
			}
			acct = a
			return err
		}
		if !errors.Is(err, sql.ErrNoRows) {
			return err
		}
		res, err := tx.ExecContext(ctx, "INSERT INTO accounts (wa_id, cc, phone_number, state, vname, cert, shards, created_at) VALUES (?, ?, ?, 'pending', ?, ?, 1, ?)",
			waID, req.CC, req.PhoneNumber, vname, req.Cert, db.NowMillis())
		if err != nil {
			return err
		}
		id, err := res.LastInsertId()
		if err != nil {
			return err
		}
		// A new account starts from the deployment's settings.
		if _, err := tx.ExecContext(ctx, "INSERT INTO app_settings (account_id, doc, updated_at) SELECT ?, doc, ? FROM app_settings WHERE account_id = 0", id, db.NowMillis()); err != nil {
			return err
		}
		acct = Account{ID: id, WaID: waID, CC: req.CC, PhoneNumber: req.PhoneNumber, State: StatePending, VName: vname, Shards: 1}
		return nil
	})
	if err != nil {
		return RegisterResult{}, fmt.Errorf("register %s: %w", waID, err)
	}
	s.forget()
	if acct.Verified() {
		return RegisterResult{AlreadyRegistered: true, VName: acct.VName, Account: acct}, nil
	}
	key, err := s.ChatKey(ctx, acct.ID)
	if err != nil {
		return RegisterResult{}, err
	}
	method := req.Method
	var status string
	err = s.network(ctx, waID, key, func(iq func(context.Context, *chatdv1.IQ) (*chatdv1.IQ, error)) error {
		res, err := iq(ctx, &chatdv1.IQ{Type: chatdv1.IQType_IQ_TYPE_SET, Payload: &chatdv1.IQ_Register{Register: &chatdv1.RegisterRequest{
			Number: waID, Kind: chatdv1.AccountKind_ACCOUNT_KIND_BUSINESS, Method: method, Cert: req.Cert, Name: vname, Pin: req.Pin}}})
		if err != nil {
			return err
		}
		status = res.GetRegisterResult().GetStatus()
		return nil
	})
	if err != nil {
		return RegisterResult{}, err
	}
	if status == "registered" {
		// The network already knows this key for the number (a verify whose
		// answer was lost): finish here.
		if acct, err = s.markVerified(ctx, acct); err != nil {
			return RegisterResult{}, err
		}
		return RegisterResult{AlreadyRegistered: true, VName: vname, Account: acct}, nil
	}
	s.log.Info("registration code requested", "wa_id", waID, "method", method)
	return RegisterResult{VName: vname, Account: acct}, nil
}

// Verify completes a pending registration with the code the network sent.
// waID may be empty when exactly one registration is pending.
func (s *Store) Verify(ctx context.Context, waID, code string) (Account, error) {
	var acct Account
	if waID != "" {
		a, err := s.Resolve(ctx, waID)
		if err != nil {
			return a, err
		}
		acct = a
	} else {
		rows, err := s.db.QueryContext(ctx, "SELECT "+columns+" FROM accounts WHERE state = 'pending' ORDER BY id LIMIT 2")
		if err != nil {
			return acct, err
		}
		var pending []Account
		for rows.Next() {
			a, err := scan(rows)
			if err != nil {
				rows.Close()
				return acct, err
			}
			pending = append(pending, a)
		}
		rows.Close()
		switch len(pending) {
		case 0:
			return acct, ErrNoPending
		case 1:
			acct = pending[0]
		default:
			return acct, ErrAmbiguous
		}
	}
	if acct.Verified() {
		return acct, nil
	}
	key, err := s.ChatKey(ctx, acct.ID)
	if err != nil {
		return acct, err
	}
	err = s.network(ctx, acct.WaID, key, func(iq func(context.Context, *chatdv1.IQ) (*chatdv1.IQ, error)) error {
		_, err := iq(ctx, &chatdv1.IQ{Type: chatdv1.IQType_IQ_TYPE_SET, Payload: &chatdv1.IQ_Verify{Verify: &chatdv1.VerifyRequest{Number: acct.WaID, Code: code}}})
		return err
	})
	if err != nil {
		return acct, err
	}
	acct, err = s.markVerified(ctx, acct)
	if err == nil {
		s.log.Info("number registered", "wa_id", acct.WaID)
	}
	return acct, err
}

func (s *Store) markVerified(ctx context.Context, a Account) (Account, error) {
	defer s.forget()
	if _, err := s.db.ExecContext(ctx, "UPDATE accounts SET state = 'verified', verified_at = ? WHERE id = ?", db.NowMillis(), a.ID); err != nil {
		return a, fmt.Errorf("mark %s verified: %w", a.WaID, err)
	}
	a.State = StateVerified
	return a, nil
}

// network runs fn on a short registration connection, translating network
// failures into this package's errors.
func (s *Store) network(ctx context.Context, waID string, key wire.KeyPair, fn func(iq func(context.Context, *chatdv1.IQ) (*chatdv1.IQ, error)) error) error {
	ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	login := &chatdv1.Login{Kind: chatdv1.ConnKind_CONN_KIND_REGISTER, Account: waID, ClientVersion: "openwaba-coreapp/1"}
	err := session.Once(ctx, session.Config{Addrs: s.chatAddrs, Static: key, RootKey: s.rootKey, Log: s.log}, login, fn)
	var iqErr *session.IQError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &iqErr):
		if oe := session.OnPrem(err); oe != err {
			return oe // the network's own on-prem error (two-step)
		}
		switch iqErr.Code {
		case 401:
			return ErrWrongCode
		case 404:
			return ErrNoPending
		case 429:
			return ErrTooManyCodes
		}
		return fmt.Errorf("%w: %s", ErrNetworkRefused, iqErr.Text)
	case errors.Is(err, session.ErrRefused):
		return fmt.Errorf("%w: %v", ErrNetworkRefused, err)
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, session.ErrNotConnected):
		return fmt.Errorf("%w: %v", ErrNetwork, err)
	}
	return fmt.Errorf("%w: %v", ErrNetwork, err)
}

// SetNetworkShards tells the chat network the account's new number of
// connection slots (on a registration connection, proven by the account's
// key). The network then closes the account's sessions.
func (s *Store) SetNetworkShards(ctx context.Context, a Account, shards int) error {
	key, err := s.ChatKey(ctx, a.ID)
	if err != nil {
		return err
	}
	return s.network(ctx, a.WaID, key, func(iq func(context.Context, *chatdv1.IQ) (*chatdv1.IQ, error)) error {
		_, err := iq(ctx, &chatdv1.IQ{Type: chatdv1.IQType_IQ_TYPE_SET, Payload: &chatdv1.IQ_SetShards{SetShards: &chatdv1.SetShards{Shards: uint32(shards)}}})
		return err
	})
}

// SetTwoStep turns the number's two-step verification on with pin (6
// digits), changes it, or turns it off (pin ""). The network keeps the pin
// (hashed) and asks for it when another deployment registers the number;
// the request goes over a registration connection, proven by the
// account's key.
func (s *Store) SetTwoStep(ctx context.Context, a Account, pin string) error {
	key, err := s.ChatKey(ctx, a.ID)
	if err != nil {
		return err
	}
	err = s.network(ctx, a.WaID, key, func(iq func(context.Context, *chatdv1.IQ) (*chatdv1.IQ, error)) error {
		_, err := iq(ctx, &chatdv1.IQ{Type: chatdv1.IQType_IQ_TYPE_SET, Payload: &chatdv1.IQ_TwoStep{TwoStep: &chatdv1.TwoStep{Pin: pin}}})
		return err
	})
	if err == nil {
		s.log.Info("two-step verification changed", "wa_id", a.WaID, "on", pin != "")
	}
	return err
}

// Forget drops the cached account references (after a change made here).
func (s *Store) Forget() { s.forget() }

// ChatKeyContext is the keystore context of the account's sealed static
// key (chat_keys.static_priv).
func ChatKeyContext(accountID int64) string { return "chatkey/" + strconv.FormatInt(accountID, 10) }

// ChatKey returns the account's static key on the network, creating it on
// first use. The private key is stored sealed by the keystore.
func (s *Store) ChatKey(ctx context.Context, accountID int64) (wire.KeyPair, error) {
	var k wire.KeyPair
	var sealed []byte
	context := ChatKeyContext(accountID)
	err := s.db.QueryRowContext(ctx, "SELECT static_priv, static_pub FROM chat_keys WHERE account_id = ?", accountID).Scan(&sealed, &k.Public)
	if err == nil {
		k.Private, err = s.ks.Open(sealed, context)
		return k, err
	}
	if !errors.Is(err, sql.ErrNoRows) {
		return k, err
	}
	if k, err = wire.GenerateKeyPair(); err != nil {
		return k, err
	}
	_, err = s.db.ExecContext(ctx, "INSERT INTO chat_keys (account_id, static_priv, static_pub, created_at) VALUES (?, ?, ?, ?)",
		accountID, s.ks.Seal(k.Private, context), k.Public, db.NowMillis())
	if db.IsDuplicate(err) {
		return s.ChatKey(ctx, accountID)
	}
	return k, err
}

// vnameFromCert returns the display name carried by cert. The sandbox
// accepts any base64 text as a certificate and shows it as the name; real
// WhatsApp certificates are signed protobufs, shown as the number instead.
func vnameFromCert(cert, waID string) string {
	if b, err := base64.StdEncoding.DecodeString(strings.TrimSpace(cert)); err == nil && len(b) > 0 && len(b) <= 256 && utf8.Valid(b) &&
		!strings.ContainsFunc(string(b), func(r rune) bool { return !unicode.IsPrint(r) }) {
		return string(b)
	}
	return "+" + waID
}
