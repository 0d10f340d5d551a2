package encrypt

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"testing"

	"github.com/openwaba/openwaba/media"
)

// TestVector pins the official expansion: media key 00 01 … 1f with
// "WhatsApp Image Keys".
func TestVector(t *testing.T) {
	key := make([]byte, 32)
	for i := range key {
		key[i] = byte(i)
	}
	k, err := Expand(key, media.InfoImage)
	if err != nil {
		t.Fatal(err)
	}
	for name, c := range map[string]struct {
		got  []byte
		want string
	}{
		"iv":         {k.IV, "aa6a127218397cbd2383e4ccf7176a79"},
		"cipher key": {k.Cipher, "008c9aea9b7c5d81eb56b3f530f87d42dcc92d27b11ad6b5bd66f0560d0d8c46"},
		"mac key":    {k.MAC, "91d09ffec108833c1699574c52657923fb6e3e161d9698bc6b3a05fbc508a515"},
	} {
		if hex.EncodeToString(c.got) != c.want {
			t.Errorf("%s = %x, want %s", name, c.got, c.want)
		}
	}
}

func roundTrip(t *testing.T, plain []byte) (Result, []byte) {
	t.Helper()
	var blob bytes.Buffer
	res, err := Encrypt(&blob, bytes.NewReader(plain), NewMediaKey(), media.InfoDocument)
	if err != nil {
		t.Fatal(err)
	}
	if res.BlobLength != int64(blob.Len()) || res.FileLength != int64(len(plain)) {
		t.Fatalf("lengths: blob %d (buffer %d), file %d (want %d)", res.BlobLength, blob.Len(), res.FileLength, len(plain))
	}
	var out bytes.Buffer
	e := Expect{MediaKey: res.MediaKey, FileSHA256: res.FileSHA256, FileEncSHA256: res.FileEncSHA256, FileLength: res.FileLength}
	if err := Decrypt(&out, bytes.NewReader(blob.Bytes()), int64(blob.Len()), e, media.InfoDocument); err != nil {
		t.Fatalf("Decrypt of %d bytes: %v", len(plain), err)
	}
	if !bytes.Equal(out.Bytes(), plain) {
		t.Fatalf("round trip of %d bytes differs", len(plain))
	}
	return res, blob.Bytes()
}

func TestRoundTrip(t *testing.T) {
	for _, n := range []int{0, 1, 15, 16, 17, 64<<10 - 1, 64 << 10, 64<<10 + 1, 300_001} {
		p := make([]byte, n)
		rand.Read(p)
		roundTrip(t, p)
	}
}

func TestTamperingIsRefused(t *testing.T) {
	plain := make([]byte, 5000)
	rand.Read(plain)
	res, blob := roundTrip(t, plain)
	e := Expect{MediaKey: res.MediaKey, FileSHA256: res.FileSHA256, FileEncSHA256: res.FileEncSHA256, FileLength: res.FileLength}
	try := func(name string, b []byte, e Expect, want error) {
		t.Helper()
		var out bytes.Buffer
		err := Decrypt(&out, bytes.NewReader(b), int64(len(b)), e, media.InfoDocument)
		if !errors.Is(err, want) {
			t.Errorf("%s: Decrypt = %v, want %v", name, err, want)
		}
		if out.Len() != 0 {
			t.Errorf("%s: %d bytes of plaintext written from a bad blob", name, out.Len())
		}
	}
	flipped := bytes.Clone(blob)
	flipped[100] ^= 1
	try("flipped bit", flipped, e, ErrEncHash)
	try("truncated", blob[:len(blob)-16], e, ErrEncHash)
	try("not block-aligned", blob[:len(blob)-1], e, ErrLength)

	// A blob whose hash matches what the message says but whose MAC does
	// not (the sender lied about the key): refused by the MAC.
	other := e
	other.MediaKey = NewMediaKey()
	try("wrong key", blob, other, ErrMAC)
}
