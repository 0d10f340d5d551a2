package api

import (
	"encoding/json"
	"net/http"

	"github.com/labstack/echo/v4"

	"github.com/openwaba/openwaba/api/profile"
	corev1 "github.com/openwaba/openwaba/proto/gen/core/v1"
)

// The on-prem profile routes over the number's business profile (package
// api/profile, coreapp's GetBusinessProfile and UpdateBusinessProfile, the
// same profile the Cloud whatsapp_business_profile edge serves):
// /v1/settings/business/profile and /v1/settings/profile/about.

// onpremBusinessProfile is the on-prem shape of the business profile: every
// field, empty when unset.
type onpremBusinessProfile struct {
	Address     string   `json:"address"`
	Description string   `json:"description"`
	Email       string   `json:"email"`
	Vertical    string   `json:"vertical"`
	Websites    []string `json:"websites"`
}

type businessProfileResponse struct {
	Settings struct {
		Business struct {
			Profile onpremBusinessProfile `json:"profile"`
		} `json:"business"`
	} `json:"settings"`
	Meta meta `json:"meta"`
}

type aboutResponse struct {
	Settings struct {
		Profile struct {
			About struct {
				Text string `json:"text"`
			} `json:"about"`
		} `json:"profile"`
	} `json:"settings"`
	Meta meta `json:"meta"`
}

// businessProfile reads the number's profile from coreapp.
func (s *Server) businessProfile(c echo.Context) (profile.Business, error) {
	resp, err := call(s, c, s.opts.CallTimeout, s.core.GetBusinessProfile, &corev1.GetBusinessProfileRequest{Account: principalOf(c).account()})
	if err != nil {
		return profile.Business{}, err
	}
	var p profile.Business
	if err := json.Unmarshal(resp.GetJson(), &p); err != nil {
		return p, internal(err)
	}
	return p, nil
}

// updateProfile sends the on-prem fields given as a Cloud update body
// (profile.Update checks it here, and coreapp again).
func (s *Server) updateProfile(c echo.Context, fields map[string]json.RawMessage) error {
	fields["messaging_product"] = json.RawMessage(`"whatsapp"`)
	b, err := json.Marshal(fields)
	if err != nil {
		return internal(err)
	}
	if _, err := profile.Update(profile.Business{}, b); err != nil {
		return err
	}
	_, err = call(s, c, s.opts.CallTimeout, s.core.UpdateBusinessProfile, &corev1.UpdateBusinessProfileRequest{Account: principalOf(c).account(), UpdateJson: b})
	return err
}

// getBusinessProfile: GET /v1/settings/business/profile.
func (s *Server) getBusinessProfile(c echo.Context) error {
	p, err := s.businessProfile(c)
	if err != nil {
		return err
	}
	out := businessProfileResponse{Meta: s.meta}
	out.Settings.Business.Profile = onpremBusinessProfile{Address: p.Address, Description: p.Description, Email: p.Email, Vertical: p.Vertical, Websites: p.Websites}
	if out.Settings.Business.Profile.Websites == nil {
		out.Settings.Business.Profile.Websites = []string{}
	}
	return c.JSON(http.StatusOK, out)
}

// setBusinessProfile: POST /v1/settings/business/profile {"address",
// "description", "email", "vertical", "websites"}: the fields given replace
// theirs.
func (s *Server) setBusinessProfile(c echo.Context) error {
	o, err := readObject(c, "address", "description", "email", "vertical", "websites")
	if err != nil {
		return err
	}
	fields := map[string]json.RawMessage{}
	for _, name := range []string{"address", "description", "email", "vertical", "websites"} {
		if v, ok, err := field[json.RawMessage](o, name); err != nil {
			return err
		} else if ok {
			fields[name] = v
		}
	}
	if len(fields) == 0 {
		return missing("give at least one of address, description, email, vertical, websites")
	}
	if err := s.updateProfile(c, fields); err != nil {
		return err
	}
	return c.JSON(http.StatusOK, metaOnly{Meta: s.meta})
}

// getAbout: GET /v1/settings/profile/about.
func (s *Server) getAbout(c echo.Context) error {
	p, err := s.businessProfile(c)
	if err != nil {
		return err
	}
	out := aboutResponse{Meta: s.meta}
	out.Settings.Profile.About.Text = p.About
	return c.JSON(http.StatusOK, out)
}

// setAbout: PATCH /v1/settings/profile/about {"text": "…"} (1 to 139
// characters).
func (s *Server) setAbout(c echo.Context) error {
	o, err := readObject(c, "text")
	if err != nil {
		return err
	}
	text, err := requiredString(o, "text")
	if err != nil {
		return err
	}
	b, _ := json.Marshal(text)
	if err := s.updateProfile(c, map[string]json.RawMessage{"about": b}); err != nil {
		return err
	}
	return c.JSON(http.StatusOK, metaOnly{Meta: s.meta})
}
