package api

import (
	"context"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/openwaba/openwaba/api/errcode"
	"github.com/openwaba/openwaba/media"
	corev1 "github.com/openwaba/openwaba/proto/gen/core/v1"
)

// ChunkSize is the largest piece of a file in one UploadMedia message.
const ChunkSize = media.StreamChunk

// maxMediaID is the longest media id looked up (longer ones do not exist).
const maxMediaID = 256

type mediaResponse struct {
	Media []idItem `json:"media"`
	Meta  meta     `json:"meta"`
}

// uploadMedia: POST /v1/media (any principal). The raw body, whose
// Content-Type must be an accepted media type, is streamed to coreapp's
// UploadMedia in chunks of at most ChunkSize bytes: memory does not grow with
// the file. A body over media.MaxUpload is refused as soon as that is known
// (Content-Length, or reading past the limit) and the stream is cancelled, so
// coreapp discards what it received.
func (s *Server) uploadMedia(c echo.Context) error {
	r := c.Request()
	ct := strings.TrimSpace(r.Header.Get(echo.HeaderContentType))
	if ct == "" {
		return missing("the Content-Type header is required: the MIME type of the file")
	}
	if !media.Accepted(ct) {
		return invalid("Content-Type %s is not accepted; accepted types: %s", media.BaseType(ct), strings.Join(media.AcceptedTypes(), ", "))
	}
	switch {
	case r.ContentLength == 0:
		return missing("empty upload")
	case r.ContentLength > media.MaxUpload:
		return uploadTooLarge()
	}
	s.extendDeadlines(c)
	id, err := s.streamUpload(c, principalOf(c).account(), uploadMIME(ct), r.Body)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusCreated, mediaResponse{Media: []idItem{{ID: id}}, Meta: s.meta})
}

// streamUpload streams a file of mimeType from r to coreapp's UploadMedia
// and returns its media id (see uploadMedia).
func (s *Server) streamUpload(c echo.Context, ref *corev1.AccountRef, mimeType string, r io.Reader) (string, error) {
	body := io.LimitReader(r, media.MaxUpload+1) // never read more than one byte past the limit
	// One buffer serves every chunk: Send has marshaled a message into its
	// own buffers when it returns, and the webapp's connection has no stats
	// handler or binary log that could look at the message later (gRPC's
	// caveat about changing a sent message). Allocating a chunk per message
	// would make a 100 MB upload 100 MB of garbage.
	buf := make([]byte, ChunkSize)
	chunk, err := readChunk(body, buf)
	if err != nil {
		return "", err
	}
	if len(chunk) == 0 {
		return "", missing("empty upload")
	}

	ctx, cancel := s.coreContext(c, s.opts.MediaTimeout)
	defer cancel() // cancelling an unfinished stream tells coreapp to discard the file
	// Opening the stream is retried (on another coreapp); once a byte was
	// sent it is not: the body cannot be read again.
	stream, err := retry(s, c, ctx, func(ctx context.Context) (corev1.Core_UploadMediaClient, error) { return s.core.UploadMedia(ctx) })
	if err != nil {
		return "", err
	}
	send := func(m *corev1.UploadMediaRequest) error {
		err := stream.Send(m)
		if errors.Is(err, io.EOF) { // the stream has failed: its status says why
			_, err = stream.CloseAndRecv()
		}
		return err
	}
	header := &corev1.UploadMediaHeader{Account: ref, MimeType: mimeType}
	if err := send(&corev1.UploadMediaRequest{Part: &corev1.UploadMediaRequest_Header{Header: header}}); err != nil {
		return "", err
	}
	var total int64
	for len(chunk) > 0 {
		if total += int64(len(chunk)); total > media.MaxUpload {
			cancel()
			return "", uploadTooLarge()
		}
		if err := send(&corev1.UploadMediaRequest{Part: &corev1.UploadMediaRequest_Chunk{Chunk: chunk}}); err != nil {
			return "", err
		}
		if chunk, err = readChunk(body, buf); err != nil {
			cancel()
			return "", err
		}
	}
	resp, err := stream.CloseAndRecv()
	if err != nil {
		return "", err
	}
	return resp.GetId(), nil
}

// readChunk reads the next piece of the body into buf, filling it unless the
// body ends; an empty chunk means the end.
func readChunk(body io.Reader, buf []byte) ([]byte, error) {
	n, err := io.ReadFull(body, buf)
	if err != nil && !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) {
		return nil, &Error{Status: http.StatusBadRequest, Code: errcode.InvalidRequest, Title: errcode.InvalidRequest.Title(),
			Details: "could not read the request body", cause: err}
	}
	return buf[:n], nil
}

func uploadTooLarge() *Error {
	return apiErr(http.StatusRequestEntityTooLarge, errcode.Invalid, "the file is larger than 100 MB (%d bytes)", media.MaxUpload)
}

// uploadMIME is the Content-Type given to coreapp: normalized (lower-case
// type, canonical parameters such as "codecs=opus") when it parses, else its
// base type.
func uploadMIME(ct string) string {
	if t, params, err := mime.ParseMediaType(ct); err == nil {
		if f := mime.FormatMediaType(t, params); f != "" {
			return f
		}
	}
	return media.BaseType(ct)
}

// extendDeadlines lets a media transfer take MediaTimeout, beyond the
// http.Server's ReadTimeout and WriteTimeout (a 100 MB file needs more than
// a JSON call). Servers that cannot (http.ErrNotSupported) keep theirs.
func (s *Server) extendDeadlines(c echo.Context) {
	rc := http.NewResponseController(c.Response())
	deadline := time.Now().Add(s.opts.MediaTimeout)
	_ = rc.SetReadDeadline(deadline)
	_ = rc.SetWriteDeadline(deadline)
}

// validMediaID reports whether id can name a file: 1 to maxMediaID printable
// ASCII characters.
func validMediaID(id string) bool {
	return len(id) >= 1 && len(id) <= maxMediaID && printableASCII(id)
}

// downloadMedia: GET /v1/media/{id} (any principal). The file is copied to
// the response as coreapp streams it, flushed chunk by chunk. An unknown id is
// 404 with an empty body (as on-prem); other failures before the first byte
// are the usual envelope; a failure after the headers were sent can only
// abort the response.
func (s *Server) downloadMedia(c echo.Context) error {
	return s.serveMedia(c, principalOf(c).account(), c.Param("id"))
}

// serveMedia streams file id of the account ref to the response.
func (s *Server) serveMedia(c echo.Context, ref *corev1.AccountRef, id string) error {
	if !validMediaID(id) {
		return c.NoContent(http.StatusNotFound)
	}
	s.extendDeadlines(c)
	ctx, cancel := s.coreContext(c, s.opts.MediaTimeout)
	defer cancel()
	req := &corev1.DownloadMediaRequest{Account: ref, Id: id}
	type opened struct {
		stream corev1.Core_DownloadMediaClient
		header *corev1.DownloadMediaHeader
	}
	// Retried (on another coreapp) until the header arrived: Unavailable,
	// 1017 or 1018 before it mean this node could not serve the file.
	o, err := retry(s, c, ctx, func(ctx context.Context) (opened, error) {
		st, err := s.core.DownloadMedia(ctx, req)
		if err != nil {
			return opened{}, err
		}
		m, err := st.Recv()
		if errors.Is(err, io.EOF) {
			return opened{}, internal(errors.New("DownloadMedia ended before its header"))
		}
		if err != nil {
			return opened{}, err
		}
		if m.GetHeader() == nil {
			return opened{}, internal(errors.New("DownloadMedia did not start with a header"))
		}
		return opened{st, m.GetHeader()}, nil
	})
	if status.Code(err) == codes.NotFound {
		return c.NoContent(http.StatusNotFound)
	}
	if err != nil {
		return err
	}

	size := o.header.GetSize()
	if size < 0 {
		return internal(fmt.Errorf("DownloadMedia header with size %d", size))
	}
	mt := o.header.GetMimeType()
	if mt == "" {
		mt = "application/octet-stream"
	}
	res := c.Response()
	res.Header().Set(echo.HeaderContentType, mt)
	res.Header().Set(echo.HeaderContentLength, strconv.FormatInt(size, 10))
	res.Header().Set("X-Content-Type-Options", "nosniff")
	res.WriteHeader(http.StatusOK)
	rc := http.NewResponseController(res)
	_ = rc.Flush() // the headers go out now, even if the first chunk is slow
	var sent int64
	for {
		m, err := o.stream.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil && c.Request().Context().Err() != nil {
			s.log.Debug("media download: the client went away", "request_id", requestID(c), "id", id, "sent", sent, "err", err)
			return nil
		}
		if err != nil {
			s.abortDownload(c, id, sent, size, fmt.Errorf("DownloadMedia: %w", err))
		}
		chunk := m.GetChunk()
		if m.GetHeader() != nil || sent+int64(len(chunk)) > size {
			s.abortDownload(c, id, sent, size, errors.New("DownloadMedia sent a second header or more bytes than its size"))
		}
		if _, err := res.Write(chunk); err != nil {
			s.log.Debug("media download: the client went away", "request_id", requestID(c), "id", id, "sent", sent, "err", err)
			return nil // the deferred cancel ends the coreapp stream
		}
		sent += int64(len(chunk))
		_ = rc.Flush()
	}
	if sent != size {
		s.abortDownload(c, id, sent, size, errors.New("DownloadMedia ended before its size"))
	}
	return nil
}

// abortDownload logs why a download failed after its headers were sent and
// aborts the response: the client sees a truncated transfer, never a
// complete-looking wrong file.
func (s *Server) abortDownload(c echo.Context, id string, sent, size int64, err error) {
	s.log.Error("media download aborted", "request_id", requestID(c), "id", id, "sent", sent, "size", size, "err", err)
	panic(http.ErrAbortHandler)
}

// deleteMedia: DELETE /v1/media/{id} (any principal).
func (s *Server) deleteMedia(c echo.Context) error {
	id := c.Param("id")
	if !validMediaID(id) {
		return notFound("media not found")
	}
	req := &corev1.DeleteMediaRequest{Account: principalOf(c).account(), Id: id}
	if _, err := call(s, c, s.opts.CallTimeout, s.core.DeleteMedia, req); err != nil {
		return err
	}
	return c.JSON(http.StatusOK, metaOnly{Meta: s.meta})
}

type servicesResponse struct {
	Services struct {
		Media *serviceGC `json:"media,omitempty"`
		// Message: PUT /v1/services/message/gc (messages.go).
		Message *serviceGC `json:"message,omitempty"`
	} `json:"services"`
	Meta meta `json:"meta"`
}

type serviceGC struct {
	GC gcStatus `json:"gc"`
}

// gcResponse is the answer to a started collection: status is coreapp's,
// "processing" when it says nothing.
func (s *Server) gcResponse(c echo.Context, status string, set func(*servicesResponse, *serviceGC)) error {
	if status == "" {
		status = "processing"
	}
	out := servicesResponse{Meta: s.meta}
	set(&out, &serviceGC{GC: gcStatus{Status: status}})
	return c.JSON(http.StatusOK, out)
}

type gcStatus struct {
	Status string `json:"status"`
}

// collectMedia: PUT /v1/services/media/gc (admin or API key). Completion is
// reported by webhook.
func (s *Server) collectMedia(c echo.Context) error {
	if _, err := readObject(c); err != nil { // no parameters
		return err
	}
	resp, err := call(s, c, s.opts.CallTimeout, s.core.CollectMedia, &corev1.CollectMediaRequest{Account: principalOf(c).account()})
	if err != nil {
		return err
	}
	return s.gcResponse(c, resp.GetStatus(), func(r *servicesResponse, g *serviceGC) { r.Services.Media = g })
}
