package waphone

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/openwaba/openwaba/chatd/mediaconn"
	"github.com/openwaba/openwaba/media"
	"github.com/openwaba/openwaba/media/encrypt"
	messagev1 "github.com/openwaba/openwaba/proto/gen/message/v1"
)

// Directories in the phone's home.
const (
	mediaDir = "media" // received attachments, <hex sha256><ext>
	tmpDir   = "tmp"   // blobs being encrypted for upload or downloaded; emptied at Open
)

// prepareDirs creates media/ and tmp/ and removes what a crash left in tmp/.
func (p *Phone) prepareDirs() error {
	for _, d := range []string{mediaDir, tmpDir} {
		if err := os.MkdirAll(filepath.Join(p.home, d), 0o700); err != nil {
			return err
		}
	}
	entries, err := os.ReadDir(filepath.Join(p.home, tmpDir))
	if err != nil {
		return err
	}
	for _, e := range entries {
		os.RemoveAll(filepath.Join(p.home, tmpDir, e.Name()))
	}
	return nil
}

// outFile is an attachment waiting to be encrypted and uploaded.
type outFile struct {
	path, typ, mime, caption, filename string
	replyTo, replyFrom                 string // the message it replies to, and its sender
}

// SendMedia sends the file at path as a msgType message (image, audio,
// video, document or sticker) with an optional caption and file name (a
// document gets the file's base name when filename is empty) and returns
// its id (id, when not empty, is used). The file's MIME type comes from its
// extension, else from its first bytes; it must suit msgType (any file can
// be a document) and the file must be within media.Limit(msgType).
//
// The phone's worker encrypts the file with a fresh media key into its home,
// uploads the blob to chatd's media server and sends the key, hashes and
// direct path in the end-to-end encrypted message; until the phone is
// online it keeps only the path, so the file must stay until the "sent"
// receipt. Delivery then goes as for SendText. When the file cannot be sent
// after all (gone, grown over the limit, refused by the server), an error
// event says so.
func (p *Phone) SendMedia(ctx context.Context, to, path, msgType, caption, filename, id string) (string, error) {
	return p.SendMediaReply(ctx, to, path, msgType, caption, filename, "", id)
}

// SendMediaReply is SendMedia replying to the message replyTo (none when
// it is empty).
func (p *Phone) SendMediaReply(ctx context.Context, to, path, msgType, caption, filename, replyTo, id string) (string, error) {
	id, err := checkSend(to, id)
	if err != nil {
		return "", err
	}
	if !slices.Contains(media.Names(), msgType) {
		return "", fmt.Errorf("media type %q: want one of %s", msgType, strings.Join(media.Names(), ", "))
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return "", err
	}
	fi, err := os.Stat(abs)
	if err != nil {
		return "", err
	}
	if !fi.Mode().IsRegular() {
		return "", fmt.Errorf("%s is not a regular file", path)
	}
	if limit := media.Limit(msgType); fi.Size() > limit {
		return "", fmt.Errorf("%s: %d bytes, a %s is at most %d", path, fi.Size(), msgType, limit)
	}
	mt, err := DetectMIME(abs)
	if err != nil {
		return "", err
	}
	if !media.Sendable(mt, msgType) {
		return "", fmt.Errorf("%s is %s, which cannot be sent as %s (send it as a document)", path, mt, msgType)
	}
	if filename == "" && msgType == "document" {
		filename = filepath.Base(abs)
	}
	p.enqueue(ctx, &outMsg{id: id, to: to, file: &outFile{path: abs, typ: msgType, mime: mt, caption: caption, filename: filename,
		replyTo: replyTo, replyFrom: p.sender(replyTo)}})
	return id, nil
}

// extTypes are the MIME types of the extensions phones send, first the
// name a received file of that type gets. They come before the system's
// table (mime.TypeByExtension), which differs between machines and lacks
// most audio and video types in a minimal container.
var extTypes = []struct{ ext, mime string }{
	{".jpg", "image/jpeg"}, {".jpeg", "image/jpeg"}, {".png", "image/png"}, {".webp", "image/webp"},
	{".mp4", "video/mp4"}, {".3gp", "video/3gpp"},
	{".ogg", "audio/ogg"}, {".opus", "audio/ogg"}, {".mp3", "audio/mpeg"}, {".aac", "audio/aac"},
	{".m4a", "audio/mp4"}, {".amr", "audio/amr"},
	{".pdf", "application/pdf"}, {".txt", "text/plain"}, {".doc", "application/msword"},
	{".xls", "application/vnd.ms-excel"}, {".ppt", "application/vnd.ms-powerpoint"},
	{".docx", "application/vnd.openxmlformats-officedocument.wordprocessingml.document"},
	{".xlsx", "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"},
	{".pptx", "application/vnd.openxmlformats-officedocument.presentationml.presentation"},
}

// DetectMIME returns a file's MIME type (without parameters): by its
// extension, else by sniffing its first 512 bytes.
func DetectMIME(path string) (string, error) {
	ext := strings.ToLower(filepath.Ext(path))
	for _, e := range extTypes {
		if e.ext == ext {
			return e.mime, nil
		}
	}
	if t := mime.TypeByExtension(ext); ext != "" && t != "" {
		return media.BaseType(t), nil
	}
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	head := make([]byte, 512)
	n, err := io.ReadFull(f, head)
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, io.EOF) {
		return "", err
	}
	return media.BaseType(http.DetectContentType(head[:n])), nil
}

// Extension is the file name extension a received attachment is saved
// with: the sender's file name's, else the MIME type's, else none.
func Extension(mimeType, filename string) string {
	clean := func(e string) string {
		e = strings.ToLower(e)
		if len(e) < 2 || len(e) > 10 || strings.Trim(e[1:], "abcdefghijklmnopqrstuvwxyz0123456789") != "" {
			return ""
		}
		return e
	}
	if e := clean(filepath.Ext(filename)); e != "" {
		return e
	}
	mt := media.BaseType(mimeType)
	for _, e := range extTypes {
		if e.mime == mt {
			return e.ext
		}
	}
	if exts, _ := mime.ExtensionsByType(mt); len(exts) > 0 {
		return clean(exts[0])
	}
	return ""
}

// permanentError is a send failure that trying again cannot fix.
type permanentError struct{ err error }

func (e *permanentError) Error() string { return e.err.Error() }
func (e *permanentError) Unwrap() error { return e.err }

func permanent(err error) bool {
	var pe *permanentError
	return errors.As(err, &pe) || mediaconn.Permanent(err)
}

// prepare encrypts m's file with a fresh media key into the phone's tmp/,
// uploads the blob and sets m's content. It runs on the worker.
func (p *Phone) prepare(ctx context.Context, m *outMsg) error {
	f := m.file
	info, err := encrypt.Info(f.typ)
	if err != nil {
		return &permanentError{err}
	}
	src, err := os.Open(f.path)
	if err != nil {
		return &permanentError{err}
	}
	defer src.Close()
	limit := media.Limit(f.typ)
	tmp, err := os.CreateTemp(filepath.Join(p.home, tmpDir), "up-*")
	if err != nil {
		return err
	}
	defer func() {
		tmp.Close()
		os.Remove(tmp.Name())
	}()
	res, err := encrypt.Encrypt(tmp, io.LimitReader(src, limit+1), encrypt.NewMediaKey(), info)
	if err != nil {
		return &permanentError{fmt.Errorf("encrypt %s: %w", f.path, err)}
	}
	if res.FileLength > limit {
		return &permanentError{fmt.Errorf("%s grew over the %s limit of %d bytes", f.path, f.typ, limit)}
	}
	if _, err := tmp.Seek(0, io.SeekStart); err != nil {
		return err
	}
	directPath, err := p.media.Upload(ctx, f.typ, tmp, res.BlobLength, res.FileEncSHA256)
	if err != nil {
		return err
	}
	m.content = &messagev1.Content{Body: &messagev1.Content_Media{Media: &messagev1.Media{
		Type: f.typ, MimeType: f.mime, Caption: f.caption, Filename: f.filename, DirectPath: directPath,
		MediaKey: res.MediaKey, FileSha256: res.FileSHA256, FileEncSha256: res.FileEncSHA256, FileLength: uint64(res.FileLength),
	}}}
	if f.replyTo != "" {
		m.content.Context = &messagev1.ContextInfo{MessageId: f.replyTo, From: f.replyFrom}
	}
	p.log.Debug("attachment uploaded", "id", m.id, "type", f.typ, "size", res.FileLength)
	return nil
}

// fetch downloads a received attachment into tmp/, checks the blob's hash
// and MAC, decrypts it, checks the plaintext's hash and length, and saves it
// as media/<hex sha256><ext>. It returns that path and the hex SHA-256. A
// blob that fails a check leaves nothing behind.
func (p *Phone) fetch(ctx context.Context, md *messagev1.Media) (string, string, error) {
	limit := media.Limit(md.Type)
	info, err := encrypt.Info(md.Type)
	switch {
	case limit == 0 || err != nil || !slices.Contains(media.Names(), md.Type):
		return "", "", fmt.Errorf("unknown media type %q", md.Type)
	case len(md.MediaKey) != 32 || len(md.FileSha256) != 32 || len(md.FileEncSha256) != 32:
		return "", "", errors.New("the message lacks the media key or hashes")
	case md.DirectPath == "":
		return "", "", errors.New("the message has no direct path")
	case md.FileLength > uint64(limit):
		return "", "", fmt.Errorf("a %s of %d bytes is over the limit of %d", md.Type, md.FileLength, limit)
	}
	blobLen := (int64(md.FileLength)/16+1)*16 + encrypt.MACSize // AES-CBC with PKCS#7, then the MAC
	blob, err := os.CreateTemp(filepath.Join(p.home, tmpDir), "down-*")
	if err != nil {
		return "", "", err
	}
	defer func() {
		blob.Close()
		os.Remove(blob.Name())
	}()
	n, err := p.media.Download(ctx, md.DirectPath, blob, blobLen)
	if err != nil {
		return "", "", err
	}
	out, err := os.CreateTemp(filepath.Join(p.home, tmpDir), "plain-*")
	if err != nil {
		return "", "", err
	}
	saved := false
	defer func() {
		if !saved {
			out.Close()
			os.Remove(out.Name())
		}
	}()
	e := encrypt.Expect{MediaKey: md.MediaKey, FileSHA256: md.FileSha256, FileEncSHA256: md.FileEncSha256, FileLength: int64(md.FileLength)}
	if err := encrypt.Decrypt(out, blob, n, e, info); err != nil {
		return "", "", err
	}
	fi, err := out.Stat()
	if err != nil {
		return "", "", err
	}
	if fi.Size() != int64(md.FileLength) {
		return "", "", fmt.Errorf("%w: %d bytes decrypted, the message says %d", encrypt.ErrLength, fi.Size(), md.FileLength)
	}
	if err := out.Sync(); err != nil {
		return "", "", err
	}
	if err := out.Close(); err != nil {
		return "", "", err
	}
	sum := hex.EncodeToString(md.FileSha256) // Decrypt checked it is the plaintext's
	dst := filepath.Join(p.home, mediaDir, sum+Extension(md.MimeType, md.Filename))
	if err := os.Rename(out.Name(), dst); err != nil {
		return "", "", err
	}
	saved = true
	return dst, sum, nil
}
