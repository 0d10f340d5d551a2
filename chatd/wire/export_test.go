package wire

import (
	"io"
	"time"
)

// Test hooks: the external tests of this package (package wire_test) use
// these to reach behaviour no production caller needs.

// Replayable returns c with a fixed source for the server's ephemeral key and
// a fixed server time, so that a recorded client transcript can be replayed
// against it (the fuzz corpus).
func Replayable(c ServerConfig, random io.Reader, now time.Time) ServerConfig {
	c.random = random
	c.now = func() time.Time { return now }
	return c
}

// Seal seals plaintext with c's sending CipherState (advancing its nonce) and
// returns the frame body, so a test can send bodies no WriteStanza would.
func Seal(c *Conn, plaintext []byte) ([]byte, error) {
	return c.sealer.Encrypt(nil, nil, plaintext)
}
