package api

import (
	"encoding/json"
	"net/http"

	"github.com/labstack/echo/v4"

	"github.com/openwaba/openwaba/api/profile"
	corev1 "github.com/openwaba/openwaba/proto/gen/core/v1"
)

// The business profile (package api/profile has the rules):
//
//	GET  /{v}/{phone-number-id}/whatsapp_business_profile[?fields=about,…]
//	     → {data:[{messaging_product, about, address, …}]}
//	POST /{v}/{phone-number-id}/whatsapp_business_profile {messaging_product, about?, …} → {success:true}

type profilePage struct {
	Data []map[string]any `json:"data"`
}

// cloudGetProfile: GET /{v}/{phone-number-id}/whatsapp_business_profile.
func (s *Server) cloudGetProfile(c echo.Context) error {
	n, err := numberOf(c)
	if err != nil {
		return err
	}
	fields := c.QueryParam("fields")
	if _, err := profile.Select(profile.Business{}, fields); err != nil {
		return err
	}
	resp, err := call(s, c, s.opts.CallTimeout, s.core.GetBusinessProfile, &corev1.GetBusinessProfileRequest{Account: cloudAccount(c, n)})
	if err != nil {
		return err
	}
	var p profile.Business
	if err := json.Unmarshal(resp.GetJson(), &p); err != nil {
		return internal(err)
	}
	sel, err := profile.Select(p, fields)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, profilePage{Data: []map[string]any{sel}})
}

// cloudUpdateProfile: POST /{v}/{phone-number-id}/whatsapp_business_profile.
func (s *Server) cloudUpdateProfile(c echo.Context) error {
	n, err := numberOf(c)
	if err != nil {
		return err
	}
	b, err := readBody(c)
	if err != nil {
		return err
	}
	if _, err := profile.Update(profile.Business{}, b); err != nil {
		return err // checked here, and again by coreapp against the stored profile
	}
	if _, err := call(s, c, s.opts.CallTimeout, s.core.UpdateBusinessProfile, &corev1.UpdateBusinessProfileRequest{Account: cloudAccount(c, n), UpdateJson: b}); err != nil {
		return err
	}
	return c.JSON(http.StatusOK, successResponse{Success: true})
}
