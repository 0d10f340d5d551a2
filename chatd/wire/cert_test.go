package wire_test

import (
	"bytes"
	"crypto/ed25519"
	"encoding/binary"
	"errors"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/openwaba/openwaba/chatd/wire"
	chatdv1 "github.com/openwaba/openwaba/proto/gen/chatd/v1"
)

// TestCertificateFormat pins what the root key signs, independently of the
// code: "chatd-cert-v1" ‖ server_static ‖ not_before ‖ not_after, the times
// as 8-byte big-endian unix seconds.
func TestCertificateFormat(t *testing.T) {
	n := fixedNetwork(t)
	c := n.server.Cert
	msg := []byte("chatd-cert-v1")
	msg = append(msg, n.server.Static.Public...)
	msg = binary.BigEndian.AppendUint64(msg, uint64(time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC).Unix()))
	msg = binary.BigEndian.AppendUint64(msg, uint64(time.Date(2200, 1, 1, 0, 0, 0, 0, time.UTC).Unix()))
	if !ed25519.Verify(n.rootPub, msg, c.Signature) {
		t.Fatal("the certificate's signature is not over the documented message")
	}
	if !bytes.Equal(c.ServerStatic, n.server.Static.Public) || c.NotBefore != 1577836800 || c.NotAfter != 7258118400 {
		t.Errorf("certificate fields = %x %d %d", c.ServerStatic, c.NotBefore, c.NotAfter)
	}
}

func TestVerifyCertificate(t *testing.T) {
	n := newNetwork(t)
	now := time.Now()
	if err := wire.VerifyCertificate(n.rootPub, n.server.Cert, now); err != nil {
		t.Fatalf("VerifyCertificate(valid) = %v", err)
	}
	mutate := func(f func(c *chatdv1.Certificate)) *chatdv1.Certificate {
		c := proto.Clone(n.server.Cert).(*chatdv1.Certificate)
		f(c)
		return c
	}
	tests := []struct {
		name string
		root ed25519.PublicKey
		cert *chatdv1.Certificate
		now  time.Time
		want string
	}{
		{"nil certificate", n.rootPub, nil, now, "no certificate"},
		{"no root key", nil, n.server.Cert, now, "no valid root key"},
		{"other static key", n.rootPub, mutate(func(c *chatdv1.Certificate) { c.ServerStatic[0] ^= 1 }), now, "not signed"},
		{"short static key", n.rootPub, mutate(func(c *chatdv1.Certificate) { c.ServerStatic = c.ServerStatic[:31] }), now, "31-byte key"},
		{"earlier not_before", n.rootPub, mutate(func(c *chatdv1.Certificate) { c.NotBefore-- }), now, "not signed"},
		{"later not_after", n.rootPub, mutate(func(c *chatdv1.Certificate) { c.NotAfter++ }), now, "not signed"},
		{"truncated signature", n.rootPub, mutate(func(c *chatdv1.Certificate) { c.Signature = c.Signature[:63] }), now, "not signed"},
		{"no signature", n.rootPub, mutate(func(c *chatdv1.Certificate) { c.Signature = nil }), now, "not signed"},
		{"expired", n.rootPub, n.server.Cert, now.Add(24*time.Hour + wire.CertClockSlack + time.Minute), "expired"},
		{"not yet valid", n.rootPub, n.server.Cert, now.Add(-time.Hour - wire.CertClockSlack - time.Minute), "not valid before"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := wire.VerifyCertificate(tt.root, tt.cert, tt.now)
			if !errors.Is(err, wire.ErrUntrustedServer) || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("VerifyCertificate = %v, want ErrUntrustedServer saying %q", err, tt.want)
			}
		})
	}
}

func TestIssueCertificateRefuses(t *testing.T) {
	n := newNetwork(t)
	now := time.Now()
	if _, err := wire.IssueCertificate(n.rootPriv, n.server.Static.Public[:31], now, now.Add(time.Hour)); err == nil {
		t.Error("issued a certificate for a 31-byte key")
	}
	if _, err := wire.IssueCertificate(n.rootPriv, n.server.Static.Public, now, now); err == nil {
		t.Error("issued a certificate with an empty validity window")
	}
	if _, err := wire.IssueCertificate(nil, n.server.Static.Public, now, now.Add(time.Hour)); err == nil {
		t.Error("issued a certificate without a root key")
	}
}

func TestRootKeyEncoding(t *testing.T) {
	pub, _, err := wire.GenerateRootKey()
	if err != nil {
		t.Fatal(err)
	}
	s := wire.EncodeRootKey(pub)
	for _, in := range []string{s, s + "\n", "  " + s + "\r\n"} {
		got, err := wire.ParseRootKey(in)
		if err != nil || !bytes.Equal(got, pub) {
			t.Errorf("ParseRootKey(%q) = %x, %v; want %x", in, got, err, []byte(pub))
		}
	}
	for _, bad := range []string{"", "not base64!", wire.EncodeRootKey(pub[:31]), s + s} {
		if _, err := wire.ParseRootKey(bad); err == nil {
			t.Errorf("ParseRootKey(%q) accepted it", bad)
		}
	}
}
