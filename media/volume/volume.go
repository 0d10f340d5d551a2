// Package volume is the content-addressed media store on the shared volume:
// a file is named by the hex SHA-256 of its content (sha256/ab/cd/<hash>),
// written to a temporary file, fsynced and renamed into place, so a reader
// never sees a partial file and a crash never leaves one under its name.
// Storing the same content twice stores it once.
//
// A Volume is safe for concurrent use, also by several processes sharing the
// directory.
package volume

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
)

// Volume is a media directory.
type Volume struct {
	root string
}

// ErrTooLarge is returned by Put when the content exceeds its limit.
var ErrTooLarge = errors.New("media larger than the limit")

// ErrEmpty is returned by Put for empty content.
var ErrEmpty = errors.New("empty media")

// ErrNotFound is returned for content not on the volume.
var ErrNotFound = errors.New("media not on the volume")

// Open returns the volume rooted at dir, creating it if needed.
func Open(dir string) (*Volume, error) {
	for _, d := range []string{filepath.Join(dir, "sha256"), filepath.Join(dir, "tmp")} {
		if err := os.MkdirAll(d, 0o750); err != nil {
			return nil, err
		}
	}
	return &Volume{root: dir}, nil
}

// Root is the volume's directory.
func (v *Volume) Root() string { return v.root }

// Path is where content with this hex SHA-256 lives.
func (v *Volume) Path(sha string) (string, error) {
	if len(sha) != 64 || strings.Trim(sha, "0123456789abcdef") != "" {
		return "", fmt.Errorf("bad content hash %q", sha)
	}
	return filepath.Join(v.root, "sha256", sha[:2], sha[2:4], sha), nil
}

// Put stores at most limit bytes from r and returns their hex SHA-256 and
// size. Content over the limit is ErrTooLarge and empty content ErrEmpty;
// nothing is kept for either.
func (v *Volume) Put(r io.Reader, limit int64) (sha string, size int64, err error) {
	tmp, err := v.TempFile()
	if err != nil {
		return "", 0, err
	}
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	h := sha256.New()
	size, err = io.Copy(io.MultiWriter(tmp, h), io.LimitReader(r, limit+1))
	if err != nil {
		return "", 0, err
	}
	if size > limit {
		return "", 0, ErrTooLarge
	}
	if size == 0 {
		return "", 0, ErrEmpty
	}
	sha = hex.EncodeToString(h.Sum(nil))
	return sha, size, v.Commit(tmp, sha)
}

// TempFile returns a new temporary file on the volume (same file system as
// the store, so Commit can rename it into place).
func (v *Volume) TempFile() (*os.File, error) {
	return os.CreateTemp(filepath.Join(v.root, "tmp"), "put-"+rand.Text()[:8]+"-*")
}

// Commit fsyncs and closes tmp and renames it to the content's name; tmp is
// gone afterwards either way.
func (v *Volume) Commit(tmp *os.File, sha string) error {
	dst, err := v.Path(sha)
	if err != nil {
		tmp.Close()
		os.Remove(tmp.Name())
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		os.Remove(tmp.Name())
		return err
	}
	if err := tmp.Close(); err != nil {
		os.Remove(tmp.Name())
		return err
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o750); err != nil {
		os.Remove(tmp.Name())
		return err
	}
	if err := os.Rename(tmp.Name(), dst); err != nil {
		os.Remove(tmp.Name())
		return err
	}
	if d, err := os.Open(filepath.Dir(dst)); err == nil { // make the rename durable
		d.Sync()
		d.Close()
	}
	return nil
}

// Open returns the content with this hash and its size.
func (v *Volume) Open(sha string) (*os.File, int64, error) {
	p, err := v.Path(sha)
	if err != nil {
		return nil, 0, err
	}
	f, err := os.Open(p)
	if errors.Is(err, os.ErrNotExist) {
		return nil, 0, fmt.Errorf("%s: %w", sha, ErrNotFound)
	}
	if err != nil {
		return nil, 0, err
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, 0, err
	}
	return f, st.Size(), nil
}

// Has reports whether the content is on the volume.
func (v *Volume) Has(sha string) bool {
	p, err := v.Path(sha)
	if err != nil {
		return false
	}
	_, err = os.Stat(p)
	return err == nil
}

// Remove deletes the content (no error if it is already gone).
func (v *Volume) Remove(sha string) error {
	p, err := v.Path(sha)
	if err != nil {
		return err
	}
	if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return nil
}
