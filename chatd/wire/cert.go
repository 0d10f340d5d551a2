package wire

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"time"

	chatdv1 "github.com/openwaba/openwaba/proto/gen/chatd/v1"
)

// The network's trust root: an Ed25519 key pair. Its public half is pinned by
// every client (WA_CHAT_ROOT_KEY, waphone's root_key); its private half signs
// the certificate that binds a chatd server's Noise static key to the network.

// CertClockSlack is how far the client's clock may be off a certificate's
// validity window before the certificate is refused.
const CertClockSlack = 5 * time.Minute

// certContext separates certificate signatures from anything else the root
// key might ever sign.
const certContext = "chatd-cert-v1"

// ErrUntrustedServer is a server that did not prove it belongs to the network
// whose root key the client pins: no certificate, a bad signature, a
// certificate outside its validity window, or one for another static key.
// It may be a misconfiguration (the wrong root key pinned) or an attack.
var ErrUntrustedServer = errors.New("untrusted chatd server")

// KeyPair is a Curve25519 key pair: the Noise static key that identifies an
// account (or a chatd server) on the network.
type KeyPair struct {
	Private []byte
	Public  []byte
}

// GenerateKeyPair returns a new random static key pair.
func GenerateKeyPair() (KeyPair, error) {
	k, err := cipherSuite.GenerateKeypair(rand.Reader)
	if err != nil {
		return KeyPair{}, err
	}
	return KeyPair{Private: k.Private, Public: k.Public}, nil
}

// GenerateRootKey returns a new network root key pair.
func GenerateRootKey() (ed25519.PublicKey, ed25519.PrivateKey, error) {
	return ed25519.GenerateKey(rand.Reader)
}

// EncodeRootKey returns the root public key in the form clients are
// configured with: standard base64 of the 32 key bytes.
func EncodeRootKey(pub ed25519.PublicKey) string {
	return base64.StdEncoding.EncodeToString(pub)
}

// ParseRootKey parses a root public key written by EncodeRootKey; surrounding
// white space (a file's trailing newline) is ignored.
func ParseRootKey(s string) (ed25519.PublicKey, error) {
	b, err := base64.StdEncoding.DecodeString(strings.TrimSpace(s))
	if err != nil {
		return nil, fmt.Errorf("root key: not base64: %w", err)
	}
	if len(b) != ed25519.PublicKeySize {
		return nil, fmt.Errorf("root key: %d bytes, want %d", len(b), ed25519.PublicKeySize)
	}
	return ed25519.PublicKey(b), nil
}

// certMessage is what the root key signs.
func certMessage(serverStatic []byte, notBefore, notAfter int64) []byte {
	m := make([]byte, 0, len(certContext)+len(serverStatic)+16)
	m = append(m, certContext...)
	m = append(m, serverStatic...)
	m = binary.BigEndian.AppendUint64(m, uint64(notBefore))
	m = binary.BigEndian.AppendUint64(m, uint64(notAfter))
	return m
}

// IssueCertificate signs a certificate for a server's Noise static public
// key, valid from notBefore to notAfter (whole seconds).
func IssueCertificate(root ed25519.PrivateKey, serverStatic []byte, notBefore, notAfter time.Time) (*chatdv1.Certificate, error) {
	if len(root) != ed25519.PrivateKeySize {
		return nil, fmt.Errorf("issue certificate: root key of %d bytes", len(root))
	}
	if len(serverStatic) != cipherSuite.DHLen() {
		return nil, fmt.Errorf("issue certificate: server static key of %d bytes, want %d", len(serverStatic), cipherSuite.DHLen())
	}
	nb, na := notBefore.Unix(), notAfter.Unix()
	if na <= nb {
		return nil, errors.New("issue certificate: not_after is not after not_before")
	}
	return &chatdv1.Certificate{
		ServerStatic: append([]byte(nil), serverStatic...),
		NotBefore:    nb,
		NotAfter:     na,
		Signature:    ed25519.Sign(root, certMessage(serverStatic, nb, na)),
	}, nil
}

// VerifyCertificate checks that cert is signed by root and valid at now,
// give or take CertClockSlack. It does not check which key the certificate is
// for: the handshake compares that with the key the server proved. Every
// error wraps ErrUntrustedServer.
func VerifyCertificate(root ed25519.PublicKey, cert *chatdv1.Certificate, now time.Time) error {
	switch {
	case len(root) != ed25519.PublicKeySize:
		return fmt.Errorf("%w: no valid root key pinned", ErrUntrustedServer)
	case cert == nil:
		return fmt.Errorf("%w: no certificate", ErrUntrustedServer)
	case len(cert.ServerStatic) != cipherSuite.DHLen():
		return fmt.Errorf("%w: certificate for a %d-byte key", ErrUntrustedServer, len(cert.ServerStatic))
	case !ed25519.Verify(root, certMessage(cert.ServerStatic, cert.NotBefore, cert.NotAfter), cert.Signature):
		return fmt.Errorf("%w: certificate not signed by the pinned root key %s", ErrUntrustedServer, EncodeRootKey(root))
	}
	if nb := time.Unix(cert.NotBefore, 0); now.Add(CertClockSlack).Before(nb) {
		return fmt.Errorf("%w: certificate not valid before %s (local time %s)", ErrUntrustedServer, nb.UTC().Format(time.RFC3339), now.UTC().Format(time.RFC3339))
	}
	if na := time.Unix(cert.NotAfter, 0); now.Add(-CertClockSlack).After(na) {
		return fmt.Errorf("%w: certificate expired at %s (local time %s)", ErrUntrustedServer, na.UTC().Format(time.RFC3339), now.UTC().Format(time.RFC3339))
	}
	return nil
}
