package api

import (
	"crypto/hmac"
	"net/http"
	"strconv"

	"github.com/labstack/echo/v4"

	"github.com/openwaba/openwaba/api/profile"
	corev1 "github.com/openwaba/openwaba/proto/gen/core/v1"
)

// The profile photo: POST /v1/settings/profile/photo takes the raw JPEG
// or PNG file (api/profile.CheckPhoto: at least 640×640, at most 2 MiB),
// GET answers it, or with ?format=link a link that downloads it without
// credentials for MediaURLTTL (signed as the Cloud media URLs are), and
// DELETE removes it. The network shows it to the customers with the name
// and the about text (coreapp publishes them).

// photoLinkPath is the route of the signed photo links: /cloud/photo/{pnid}.
const photoLinkPath = "/cloud/photo/"

type photoLinkResponse struct {
	Settings struct {
		Profile struct {
			Photo struct {
				Link string `json:"link"`
			} `json:"photo"`
		} `json:"profile"`
	} `json:"settings"`
	Meta meta `json:"meta"`
}

// getPhoto: GET /v1/settings/profile/photo[?format=link] (admin or API key).
func (s *Server) getPhoto(c echo.Context) error {
	switch f := c.QueryParam("format"); f {
	case "":
	case "link":
		a, err := call(s, c, s.opts.CallTimeout, s.core.GetAccount, &corev1.GetAccountRequest{Account: principalOf(c).account()})
		if err != nil {
			return err
		}
		if _, err := call(s, c, s.opts.CallTimeout, s.core.GetProfilePhoto, &corev1.GetProfilePhotoRequest{Account: principalOf(c).account()}); err != nil {
			return err
		}
		pnid := a.GetPhoneNumberId()
		exp := s.opts.Now().Add(MediaURLTTL).Unix()
		out := photoLinkResponse{Meta: s.meta}
		out.Settings.Profile.Photo.Link = c.Scheme() + "://" + c.Request().Host + photoLinkPath + strconv.FormatInt(pnid, 10) +
			"?expires=" + strconv.FormatInt(exp, 10) + "&signature=" + s.mediaSignature(pnid, photoLinkPath, exp)
		return c.JSON(http.StatusOK, out)
	default:
		return invalid("format must be link, or absent for the file itself")
	}
	return s.servePhoto(c, principalOf(c).account())
}

func (s *Server) servePhoto(c echo.Context, ref *corev1.AccountRef) error {
	p, err := call(s, c, s.opts.CallTimeout, s.core.GetProfilePhoto, &corev1.GetProfilePhotoRequest{Account: ref})
	if err != nil {
		return err
	}
	return c.Blob(http.StatusOK, p.GetMime(), p.GetData())
}

// signedPhoto: GET /cloud/photo/{pnid}?expires&signature (no credentials).
func (s *Server) signedPhoto(c echo.Context) error {
	pnid, err1 := strconv.ParseInt(c.Param("pnid"), 10, 64)
	exp, err2 := strconv.ParseInt(c.QueryParam("expires"), 10, 64)
	if err1 != nil || err2 != nil || !hmac.Equal([]byte(c.QueryParam("signature")), []byte(s.mediaSignature(pnid, photoLinkPath, exp))) {
		return forbidden("the photo link is not valid")
	}
	if s.opts.Now().Unix() > exp {
		return forbidden("the photo link expired: ask GET /v1/settings/profile/photo?format=link for a new one")
	}
	return s.servePhoto(c, &corev1.AccountRef{PhoneNumberId: pnid, Caller: corev1.Caller_CALLER_API_KEY})
}

// setPhoto: POST /v1/settings/profile/photo (admin or API key), 201.
func (s *Server) setPhoto(c echo.Context) error {
	b, err := readBody(c)
	if err != nil {
		return err
	}
	if _, err := profile.CheckPhoto(b); err != nil {
		return err
	}
	if _, err := call(s, c, s.opts.CallTimeout, s.core.SetProfilePhoto, &corev1.SetProfilePhotoRequest{Account: principalOf(c).account(), Data: b}); err != nil {
		return err
	}
	return c.JSON(http.StatusCreated, metaOnly{Meta: s.meta})
}

// deletePhoto: DELETE /v1/settings/profile/photo (admin or API key).
func (s *Server) deletePhoto(c echo.Context) error {
	if _, err := readObject(c); err != nil {
		return err
	}
	if _, err := call(s, c, s.opts.CallTimeout, s.core.DeleteProfilePhoto, &corev1.DeleteProfilePhotoRequest{Account: principalOf(c).account()}); err != nil {
		return err
	}
	return c.JSON(http.StatusOK, metaOnly{Meta: s.meta})
}
