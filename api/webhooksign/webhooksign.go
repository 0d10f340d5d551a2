// Package webhooksign signs webhook POSTs the way Standard Webhooks
// (https://www.standardwebhooks.com, spec/standard-webhooks.md) defines it,
// and verifies such signatures (for receivers and tests).
//
// A secret is "whsec_" followed by the base64 of 24 to 64 random bytes; the
// key is those bytes. A POST carries three headers: webhook-id (the
// message's id, the same on every retry: receivers deduplicate with it),
// webhook-timestamp (Unix seconds of this attempt) and webhook-signature, a
// space-separated list of "v1,<base64 HMAC-SHA256(key, id.timestamp.body)>",
// one per valid secret: while a rotated-out secret is in its grace period
// both signatures are sent, and a receiver holding either accepts the POST.
package webhooksign

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// The header names.
const (
	HeaderID        = "webhook-id"
	HeaderTimestamp = "webhook-timestamp"
	HeaderSignature = "webhook-signature"
)

// Prefix starts every secret.
const Prefix = "whsec_"

// Key sizes a secret may have.
const (
	MinKeyBytes = 24
	MaxKeyBytes = 64
)

// Tolerance is how far a timestamp may be from the verifier's clock.
const Tolerance = 5 * time.Minute

// NewSecret returns a fresh secret of 32 random bytes.
func NewSecret() string {
	b := make([]byte, 32)
	rand.Read(b)
	return Prefix + base64.StdEncoding.EncodeToString(b)
}

// Key returns the key of a secret, or why it is not one.
func Key(secret string) ([]byte, error) {
	rest, ok := strings.CutPrefix(secret, Prefix)
	if !ok {
		return nil, fmt.Errorf("a signing secret starts with %q", Prefix)
	}
	k, err := base64.StdEncoding.DecodeString(rest)
	if err != nil {
		return nil, errors.New("a signing secret is " + Prefix + " and standard base64")
	}
	if len(k) < MinKeyBytes || len(k) > MaxKeyBytes {
		return nil, fmt.Errorf("a signing secret holds %d to %d bytes, not %d", MinKeyBytes, MaxKeyBytes, len(k))
	}
	return k, nil
}

// Sign returns one "v1,<signature>" of the message for key.
func Sign(key []byte, id string, ts int64, body []byte) string {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(id))
	m.Write([]byte{'.'})
	m.Write([]byte(strconv.FormatInt(ts, 10)))
	m.Write([]byte{'.'})
	m.Write(body)
	return "v1," + base64.StdEncoding.EncodeToString(m.Sum(nil))
}

// Header returns the webhook-signature value for every key, space-separated.
func Header(keys [][]byte, id string, ts int64, body []byte) string {
	sigs := make([]string, len(keys))
	for i, k := range keys {
		sigs[i] = Sign(k, id, ts, body)
	}
	return strings.Join(sigs, " ")
}

// Errors of Verify.
var (
	ErrNoMatch   = errors.New("no signature matches")
	ErrTimestamp = errors.New("the timestamp is missing or too far from now")
)

// Verify checks the three headers' values against secret at now.
func Verify(secret, id, timestamp, signatures string, body []byte, now time.Time) error {
	key, err := Key(secret)
	if err != nil {
		return err
	}
	ts, err := strconv.ParseInt(timestamp, 10, 64)
	if err != nil || now.Sub(time.Unix(ts, 0)).Abs() > Tolerance {
		return ErrTimestamp
	}
	want := []byte(Sign(key, id, ts, body))
	for _, s := range strings.Fields(signatures) {
		if hmac.Equal([]byte(s), want) {
			return nil
		}
	}
	return ErrNoMatch
}
