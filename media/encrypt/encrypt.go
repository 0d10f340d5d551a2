// Package encrypt is WhatsApp's media encryption. A random 32-byte media key
// is expanded with HKDF-SHA256 (no salt, info "WhatsApp <Type> Keys", 112
// bytes) into an IV (16), an AES-256 key (32) and a MAC key (32). The blob is
// AES-256-CBC(PKCS#7(plaintext)) followed by the first 10 bytes of
// HMAC-SHA256(macKey, IV ‖ ciphertext). The message carries the key, the
// SHA-256 of the plaintext, the SHA-256 of the blob and the plaintext length;
// the receiver checks the blob hash, then the MAC, decrypts, and checks the
// plaintext hash. The server storing the blob never sees the key.
//
// Encrypt and Decrypt stream: memory stays flat whatever the size.
package encrypt

import (
	"bufio"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"io"

	"github.com/openwaba/openwaba/media"
)

// Info returns the HKDF info for an on-prem message type (the media table,
// media.Kinds: stickers use the image keys, voice the audio keys, as
// WhatsApp does).
func Info(msgType string) (string, error) {
	k, ok := media.KindOf(msgType)
	if !ok {
		return "", fmt.Errorf("no media keys for type %q", msgType)
	}
	return k.HKDFInfo, nil
}

// MACSize is the length of the truncated MAC at the end of a blob.
const MACSize = 10

// Keys are the expanded media key.
type Keys struct {
	IV, Cipher, MAC []byte
}

// Expand derives the keys of mediaKey for info.
func Expand(mediaKey []byte, info string) (Keys, error) {
	if len(mediaKey) != 32 {
		return Keys{}, fmt.Errorf("media key of %d bytes, want 32", len(mediaKey))
	}
	b, err := hkdf.Key(sha256.New, mediaKey, nil, info, 112)
	if err != nil {
		return Keys{}, err
	}
	return Keys{IV: b[0:16], Cipher: b[16:48], MAC: b[48:80]}, nil
}

// Result describes an encrypted blob.
type Result struct {
	MediaKey      []byte
	FileSHA256    []byte // of the plaintext
	FileEncSHA256 []byte // of the blob
	FileLength    int64  // of the plaintext
	BlobLength    int64
}

// NewMediaKey returns a random media key.
func NewMediaKey() []byte {
	k := make([]byte, 32)
	rand.Read(k)
	return k
}

// Encrypt reads plaintext from r and writes the blob to w under mediaKey.
func Encrypt(w io.Writer, r io.Reader, mediaKey []byte, info string) (Result, error) {
	keys, err := Expand(mediaKey, info)
	if err != nil {
		return Result{}, err
	}
	block, err := aes.NewCipher(keys.Cipher)
	if err != nil {
		return Result{}, err
	}
	cbc := cipher.NewCBCEncrypter(block, keys.IV)
	mac := hmac.New(sha256.New, keys.MAC)
	mac.Write(keys.IV)
	plainHash, encHash := sha256.New(), sha256.New()
	out := io.MultiWriter(w, encHash)
	res := Result{MediaKey: mediaKey}

	buf := make([]byte, 64<<10) // a multiple of the block size
	ct := make([]byte, len(buf)+aes.BlockSize)
	var pending []byte // < one block carried to the next read
	for {
		n, rerr := io.ReadFull(r, buf[:len(buf)-len(pending)])
		chunk := append(pending, buf[:n]...)
		plainHash.Write(buf[:n])
		res.FileLength += int64(n)
		final := rerr == io.EOF || rerr == io.ErrUnexpectedEOF
		if rerr != nil && !final {
			return Result{}, rerr
		}
		if final {
			pad := aes.BlockSize - len(chunk)%aes.BlockSize
			for range pad {
				chunk = append(chunk, byte(pad))
			}
		}
		full := len(chunk) - len(chunk)%aes.BlockSize
		cbc.CryptBlocks(ct[:full], chunk[:full])
		mac.Write(ct[:full])
		if _, err := out.Write(ct[:full]); err != nil {
			return Result{}, err
		}
		res.BlobLength += int64(full)
		pending = append(pending[:0:0], chunk[full:]...)
		if final {
			break
		}
	}
	tag := mac.Sum(nil)[:MACSize]
	if _, err := out.Write(tag); err != nil {
		return Result{}, err
	}
	res.BlobLength += MACSize
	res.FileSHA256, res.FileEncSHA256 = plainHash.Sum(nil), encHash.Sum(nil)
	return res, nil
}

// Errors of Decrypt: the blob does not match what the message says.
var (
	ErrEncHash   = errors.New("media blob hash mismatch")
	ErrMAC       = errors.New("media MAC mismatch")
	ErrPlainHash = errors.New("media plaintext hash mismatch")
	ErrLength    = errors.New("media length mismatch")
	ErrPadding   = errors.New("media padding invalid")
)

// Expect is what the message says about a blob.
type Expect struct {
	MediaKey      []byte
	FileSHA256    []byte
	FileEncSHA256 []byte
	FileLength    int64 // 0: not checked
}

// Decrypt checks a blob of blobLen bytes from r against e and writes the
// plaintext to w. The blob's hash and MAC are checked before any plaintext
// is written, so w receives nothing from a corrupted or truncated blob; the
// caller still discards w on any error (the plaintext hash is checked last).
// Reading the blob twice keeps memory flat: src must be seekable.
func Decrypt(w io.Writer, src io.ReadSeeker, blobLen int64, e Expect, info string) error {
	if blobLen < aes.BlockSize+MACSize || (blobLen-MACSize)%aes.BlockSize != 0 {
		return ErrLength
	}
	keys, err := Expand(e.MediaKey, info)
	if err != nil {
		return err
	}
	// Pass 1: blob hash and MAC.
	encHash := sha256.New()
	mac := hmac.New(sha256.New, keys.MAC)
	mac.Write(keys.IV)
	if _, err := src.Seek(0, io.SeekStart); err != nil {
		return err
	}
	body := io.LimitReader(src, blobLen-MACSize)
	if n, err := io.Copy(io.MultiWriter(encHash, mac), body); err != nil {
		return err
	} else if n != blobLen-MACSize {
		return ErrLength
	}
	tag := make([]byte, MACSize)
	if _, err := io.ReadFull(src, tag); err != nil {
		return ErrLength
	}
	encHash.Write(tag)
	if subtle.ConstantTimeCompare(encHash.Sum(nil), e.FileEncSHA256) != 1 {
		return ErrEncHash
	}
	if !hmac.Equal(mac.Sum(nil)[:MACSize], tag) {
		return ErrMAC
	}
	// Pass 2: decrypt.
	if _, err := src.Seek(0, io.SeekStart); err != nil {
		return err
	}
	block, err := aes.NewCipher(keys.Cipher)
	if err != nil {
		return err
	}
	cbc := cipher.NewCBCDecrypter(block, keys.IV)
	plainHash := sha256.New()
	out := bufio.NewWriterSize(io.MultiWriter(w, plainHash), 64<<10)
	rd := bufio.NewReaderSize(io.LimitReader(src, blobLen-MACSize), 64<<10)
	buf := make([]byte, 64<<10)
	left := blobLen - MACSize
	var written int64
	for left > 0 {
		n := int(min(int64(len(buf)), left))
		if _, err := io.ReadFull(rd, buf[:n]); err != nil {
			return ErrLength
		}
		cbc.CryptBlocks(buf[:n], buf[:n])
		left -= int64(n)
		plain := buf[:n]
		if left == 0 {
			pad := int(plain[len(plain)-1])
			if pad < 1 || pad > aes.BlockSize || pad > len(plain) {
				return ErrPadding
			}
			for _, c := range plain[len(plain)-pad:] {
				if int(c) != pad {
					return ErrPadding
				}
			}
			plain = plain[:len(plain)-pad]
		}
		if _, err := out.Write(plain); err != nil {
			return err
		}
		written += int64(len(plain))
	}
	if err := out.Flush(); err != nil {
		return err
	}
	if subtle.ConstantTimeCompare(plainHash.Sum(nil), e.FileSHA256) != 1 {
		return ErrPlainHash
	}
	if e.FileLength != 0 && written != e.FileLength {
		return ErrLength
	}
	return nil
}
