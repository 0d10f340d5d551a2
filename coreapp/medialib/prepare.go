package medialib

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/openwaba/openwaba/media"
	"github.com/openwaba/openwaba/media/encrypt"
	messagev1 "github.com/openwaba/openwaba/proto/gen/message/v1"
)

// ErrSend is a media message that cannot be sent as accepted (the file is
// gone, too large, of a type that cannot be sent as the message's type, or
// its link could not be fetched); the message fails.
var ErrSend = errors.New("media cannot be sent")

// Pending reports whether a message's media still has to be prepared
// (accepted with a media id or a link, not encrypted and uploaded yet).
func Pending(md *messagev1.Media) bool {
	return md != nil && md.DirectPath == "" && (md.MediaId != "" || md.Link != "")
}

// Prepare turns a media message as accepted (a media id or a link) into
// what travels end to end: the file is encrypted under a new media key and
// the blob uploaded to the media server through nw. Errors wrapping ErrSend
// are final for the message; others are worth retrying.
func (s *Store) Prepare(ctx context.Context, accountID int64, md *messagev1.Media, nw Net) (*messagev1.Media, error) {
	info, err := encrypt.Info(md.Type)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrSend, err)
	}
	var (
		f        *os.File
		size     int64
		mimeType string
	)
	switch {
	case md.MediaId != "":
		var in Info
		f, in, err = s.Open(ctx, accountID, md.MediaId)
		switch {
		case errors.Is(err, ErrNotFound), errors.Is(err, ErrDownload):
			return nil, fmt.Errorf("%w: %v", ErrSend, err)
		case err != nil:
			return nil, err
		}
		size, mimeType = in.Size, in.MimeType
	default:
		fe, err := s.FetchLink(ctx, accountID, md.Link, md.Provider, md.Type)
		if err != nil {
			if errors.Is(err, ErrLink) {
				return nil, fmt.Errorf("%w: %v", ErrSend, err)
			}
			return nil, err
		}
		// The fetched copy is only needed until it is encrypted.
		defer func() {
			if err := s.removeIfUnused(context.WithoutCancel(ctx), fe.SHA256, recentWrite); err != nil {
				s.log.Warn("removing a fetched link's file failed", "err", err)
			}
		}()
		var n int64
		if f, n, err = s.vol.Open(fe.SHA256); err != nil {
			return nil, err
		}
		size, mimeType = n, fe.MimeType
	}
	defer f.Close()
	if limit := media.Limit(md.Type); size > limit {
		return nil, fmt.Errorf("%w: the file has %d bytes, more than the %d allowed for %s", ErrSend, size, limit, md.Type)
	}
	if !media.Sendable(mimeType, md.Type) {
		return nil, fmt.Errorf("%w: a %s file cannot be sent as %s", ErrSend, media.BaseType(mimeType), md.Type)
	}
	blob, err := s.vol.TempFile()
	if err != nil {
		return nil, err
	}
	defer func() {
		blob.Close()
		os.Remove(blob.Name())
	}()
	res, err := encrypt.Encrypt(blob, f, encrypt.NewMediaKey(), info)
	if err != nil {
		return nil, err
	}
	if _, err := blob.Seek(0, io.SeekStart); err != nil {
		return nil, err
	}
	path, err := nw.Upload(ctx, md.Type, blob, res.BlobLength, res.FileEncSHA256)
	if err != nil {
		return nil, fmt.Errorf("uploading media: %w", err)
	}
	s.log.Debug("media uploaded", "type", md.Type, "bytes", res.BlobLength, "sha256", hex.EncodeToString(res.FileSHA256))
	return &messagev1.Media{Type: md.Type, MimeType: mimeType, Caption: md.Caption, Filename: md.Filename,
		DirectPath: path, MediaKey: res.MediaKey, FileSha256: res.FileSHA256, FileEncSha256: res.FileEncSHA256,
		FileLength: uint64(res.FileLength)}, nil
}
