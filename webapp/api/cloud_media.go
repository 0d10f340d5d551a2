package api

import (
	"errors"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/openwaba/openwaba/media"
	corev1 "github.com/openwaba/openwaba/proto/gen/core/v1"
)

// maxFormField is the longest multipart field besides the file
// (messaging_product, type).
const maxFormField = 256

// maxFormOverhead is what a multipart upload may carry besides the file:
// boundaries, part headers, the other fields.
const maxFormOverhead = 64 << 10

type cloudUploaded struct {
	ID string `json:"id"`
}

// cloudUpload: POST /{v}/{phone-number-id}/media and 360dialog's POST
// /media, multipart/form-data with messaging_product=whatsapp, type (the
// MIME type) and file. The file part is streamed to coreapp as POST
// /v1/media streams its body. Its MIME type is the type field when it came
// before the file, else the part's Content-Type; messaging_product, when
// it follows the file, is checked after the upload (a bad one deletes the
// file again).
func (s *Server) cloudUpload(c echo.Context) error {
	n, err := numberOf(c)
	if err != nil {
		return err
	}
	r := c.Request()
	mt, params, err := mime.ParseMediaType(r.Header.Get(echo.HeaderContentType))
	if err != nil || mt != "multipart/form-data" || params["boundary"] == "" {
		return invalid("the body must be multipart/form-data with the fields messaging_product, type and file")
	}
	if r.ContentLength > media.MaxUpload+maxFormOverhead {
		return uploadTooLarge()
	}
	s.extendDeadlines(c)
	mr := multipart.NewReader(io.LimitReader(r.Body, media.MaxUpload+maxFormOverhead), params["boundary"])
	var product, typ, id string
	// whatsapp-api-js sends messaging_product in the query.
	productSeen := c.QueryParam("messaging_product") != ""
	if productSeen && c.QueryParam("messaging_product") != "whatsapp" {
		return invalid(`messaging_product must be "whatsapp"`)
	}
	for {
		p, err := mr.NextPart()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return invalid("the multipart body could not be read: %v", err)
		}
		switch p.FormName() {
		case "messaging_product", "type":
			b, err := io.ReadAll(io.LimitReader(p, maxFormField+1))
			if err != nil || len(b) > maxFormField {
				return invalid("%s must be at most %d bytes", p.FormName(), maxFormField)
			}
			if p.FormName() == "type" {
				typ = strings.TrimSpace(string(b))
			} else {
				product, productSeen = strings.TrimSpace(string(b)), true
				if product != "whatsapp" {
					return invalid(`messaging_product must be "whatsapp"`)
				}
			}
		case "file":
			if id != "" {
				return invalid("one file per upload")
			}
			ct := typ
			if ct == "" {
				ct = p.Header.Get(echo.HeaderContentType)
			}
			switch {
			case ct == "":
				return missing("type is required: the MIME type of the file")
			case !media.Accepted(ct):
				return invalid("type %s is not accepted; accepted types: %s", media.BaseType(ct), strings.Join(media.AcceptedTypes(), ", "))
			}
			if id, err = s.streamUpload(c, cloudAccount(c, n), uploadMIME(ct), p); err != nil {
				return err
			}
		default:
			return notRequired("parameter %s is not expected", p.FormName())
		}
	}
	switch {
	case id == "":
		return missing("file is required")
	case !productSeen:
		if _, err := call(s, c, s.opts.CallTimeout, s.core.DeleteMedia, &corev1.DeleteMediaRequest{Account: cloudAccount(c, n), Id: id}); err != nil {
			// The media GC removes it after its retention.
			s.log.Warn("deleting an upload refused after the fact failed", "request_id", requestID(c), "id", id, "err", err)
		}
		return missing("messaging_product is required")
	}
	return c.JSON(http.StatusOK, cloudUploaded{ID: id})
}
