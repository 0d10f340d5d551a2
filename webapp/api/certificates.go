package api

import (
	"context"
	"errors"
	"net/http"

	"github.com/labstack/echo/v4"

	"github.com/openwaba/openwaba/webapp/webtls"
)

// The /v1/certificates routes (admin): the webapps' HTTPS certificate and
// the CA bundle the coreapps' webhook client trusts, both kept by the
// webtls.Holder in the database every webapp and coreapp reads. Uploads are
// raw PEM bodies (on-prem sends them as text/plain); a CA answers as
// text/plain, or 404 with an empty body when there is none.

func (s *Server) certs() (*webtls.Holder, error) {
	if s.opts.Certificates == nil {
		return nil, notFound("certificates are not managed by this webapp")
	}
	return s.opts.Certificates, nil
}

// certError renders a refused upload as 1009 with its reason.
func certError(err error) error {
	var ie *webtls.InvalidError
	if errors.As(err, &ie) {
		return invalid("%s", ie.Error())
	}
	return internal(err)
}

// setExternalCert: POST /v1/certificates/external.
func (s *Server) setExternalCert(c echo.Context) error {
	return s.upload(c, "the body must be the PEM file: the private key, the certificate and its chain", (*webtls.Holder).SetExternal)
}

// upload stores a PEM body with set; an empty body is 1008 (missing).
func (s *Server) upload(c echo.Context, missingBody string, set func(*webtls.Holder, context.Context, []byte) error) error {
	h, err := s.certs()
	if err != nil {
		return err
	}
	b, err := readBody(c)
	if err != nil {
		return err
	}
	if len(b) == 0 {
		return missing("%s", missingBody)
	}
	if err := set(h, c.Request().Context(), b); err != nil {
		return certError(err)
	}
	return c.JSON(http.StatusOK, metaOnly{Meta: s.meta})
}

// externalCA: GET /v1/certificates/external/ca.
func (s *Server) externalCA(c echo.Context) error {
	h, err := s.certs()
	if err != nil {
		return err
	}
	ca, ok := h.CA()
	if !ok {
		return c.NoContent(http.StatusNotFound)
	}
	return c.Blob(http.StatusOK, "text/plain; charset=utf-8", ca)
}

// webhookCA: GET /v1/certificates/webhooks/ca.
func (s *Server) webhookCA(c echo.Context) error {
	h, err := s.certs()
	if err != nil {
		return err
	}
	ca, err := h.WebhookCA(c.Request().Context())
	if err != nil {
		return internal(err)
	}
	if ca == nil {
		return c.NoContent(http.StatusNotFound)
	}
	return c.Blob(http.StatusOK, "text/plain; charset=utf-8", ca)
}

// setWebhookCA: POST /v1/certificates/webhooks/ca.
func (s *Server) setWebhookCA(c echo.Context) error {
	return s.upload(c, "the body must be the PEM bundle of CA certificates", (*webtls.Holder).SetWebhookCA)
}

// deleteWebhookCA: DELETE /v1/certificates/webhooks/ca.
func (s *Server) deleteWebhookCA(c echo.Context) error {
	h, err := s.certs()
	if err != nil {
		return err
	}
	if err := h.DeleteWebhookCA(c.Request().Context()); err != nil {
		return internal(err)
	}
	return c.JSON(http.StatusOK, metaOnly{Meta: s.meta})
}
