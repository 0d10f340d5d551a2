package api

import (
	"net/http"
	"slices"

	"github.com/labstack/echo/v4"

	"github.com/openwaba/openwaba/api/errcode"
	"github.com/openwaba/openwaba/api/phone"
	corev1 "github.com/openwaba/openwaba/proto/gen/core/v1"
)

type accountResponse struct {
	Account []vnameItem `json:"account"`
	Meta    meta        `json:"meta"`
}

type vnameItem struct {
	Vname string `json:"vname"`
}

// registerAccount: POST /v1/account (admin) {cc, phone_number, method, cert?, pin?}.
func (s *Server) registerAccount(c echo.Context) error {
	o, err := readObject(c, "cc", "phone_number", "method", "cert", "pin")
	if err != nil {
		return err
	}
	req := &corev1.RegisterAccountRequest{}
	if req.Cc, err = requiredString(o, "cc"); err != nil {
		return err
	}
	if req.PhoneNumber, err = requiredString(o, "phone_number"); err != nil {
		return err
	}
	if req.Method, err = requiredString(o, "method"); err != nil {
		return err
	}
	if req.Cert, _, err = field[string](o, "cert"); err != nil {
		return err
	}
	if req.Pin, _, err = field[string](o, "pin"); err != nil {
		return err
	}
	if err := checkNumber(req.Cc, req.PhoneNumber); err != nil {
		return err
	}
	switch {
	case req.Method != "sms" && req.Method != "voice":
		return invalid(`method must be "sms" or "voice"`)
	case req.Pin != "" && (!phone.Digits(req.Pin) || len(req.Pin) != 6):
		return invalid("pin must be 6 digits")
	}
	resp, err := call(s, c, s.opts.CallTimeout, s.core.RegisterAccount, req)
	if err != nil {
		return err
	}
	if resp.GetAlreadyRegistered() {
		return c.JSON(http.StatusCreated, metaOnly{Meta: s.meta})
	}
	return c.JSON(http.StatusAccepted, accountResponse{Account: []vnameItem{{Vname: resp.GetVname()}}, Meta: s.meta})
}

// verifyAccount: POST /v1/account/verify (admin) {"code": "123456"}.
func (s *Server) verifyAccount(c echo.Context) error {
	o, err := readObject(c, "code")
	if err != nil {
		return err
	}
	code, err := requiredString(o, "code")
	if err != nil {
		return err
	}
	if !phone.Digits(code) || len(code) != 6 {
		return invalid("code must be 6 digits")
	}
	if _, err := call(s, c, s.opts.CallTimeout, s.core.VerifyAccount, &corev1.VerifyAccountRequest{Account: &corev1.AccountRef{Caller: principalOf(c).caller()}, Code: code}); err != nil {
		return err
	}
	return c.JSON(http.StatusCreated, metaOnly{Meta: s.meta})
}

// validShards are the shard counts on-prem accepts.
var validShards = []uint32{1, 2, 4, 8, 16, 32}

// setShards: POST /v1/account/shards (admin) {cc, phone_number, shards,
// pin?, cert?}. Coreapp runs it on the primary master (1017 elsewhere: the
// call is retried on another node). 201 with the meta only. cert, which
// on-prem documents as optional here, must be a string and is ignored:
// SetShardsRequest has no field for it.
func (s *Server) setShards(c echo.Context) error {
	o, err := readObject(c, "cc", "phone_number", "shards", "pin", "cert")
	if err != nil {
		return err
	}
	if _, _, err := field[string](o, "cert"); err != nil {
		return err
	}
	req := &corev1.SetShardsRequest{Account: principalOf(c).account()}
	if req.Cc, err = requiredString(o, "cc"); err != nil {
		return err
	}
	if req.PhoneNumber, err = requiredString(o, "phone_number"); err != nil {
		return err
	}
	shards, present, err := field[float64](o, "shards")
	if err != nil {
		return err
	}
	if !present {
		return missing("shards is required")
	}
	if req.Pin, _, err = field[string](o, "pin"); err != nil {
		return err
	}
	if err := checkNumber(req.Cc, req.PhoneNumber); err != nil {
		return err
	}
	switch {
	case !slices.ContainsFunc(validShards, func(n uint32) bool { return float64(n) == shards }):
		return invalid("shards must be one of 1, 2, 4, 8, 16 or 32")
	case req.Pin != "" && (!phone.Digits(req.Pin) || len(req.Pin) != 6):
		return invalid("pin must be 6 digits")
	}
	req.Shards = uint32(shards)
	// The change drains every slot of the number first: allow it the send
	// timeout (30 s) rather than the 10 s of other calls.
	if _, err := call(s, c, s.opts.SendTimeout, s.core.SetShards, req); err != nil {
		return err
	}
	return c.JSON(http.StatusCreated, metaOnly{Meta: s.meta})
}

type shardsResponse struct {
	Account shardsItem `json:"account"`
	Meta    meta       `json:"meta"`
}

type shardsItem struct {
	Shards uint32 `json:"shards"`
}

// getShards: GET /v1/account/shards (admin): {"account":{"shards":N}}. A
// coreapp that does not report the count (0) means a single connection: 1.
func (s *Server) getShards(c echo.Context) error {
	acct, err := call(s, c, s.opts.CallTimeout, s.core.GetAccount, &corev1.GetAccountRequest{Account: principalOf(c).account()})
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, shardsResponse{Account: shardsItem{Shards: max(acct.GetShards(), 1)}, Meta: s.meta})
}

type apiKeysResponse[T any] struct {
	APIKeys []T  `json:"api_keys"`
	Meta    meta `json:"meta"`
}

type newKeyItem struct {
	Key    string `json:"key"`
	Prefix string `json:"prefix"`
	WaID   string `json:"wa_id"`
}

type keyItem struct {
	Prefix    string `json:"prefix"`
	WaID      string `json:"wa_id"`
	CreatedBy string `json:"created_by"`
	CreatedAt string `json:"created_at"`
}

// createAPIKey: POST /v1/account/api_keys (admin) {"wa_id"?}. The account
// must be verified; the full key is in this response only.
func (s *Server) createAPIKey(c echo.Context) error {
	o, err := readObject(c, "wa_id")
	if err != nil {
		return err
	}
	waID, _, err := field[string](o, "wa_id")
	if err != nil {
		return err
	}
	if waID != "" && (!phone.Digits(waID) || len(waID) < 5 || len(waID) > 20) {
		return invalid("wa_id must be 5 to 20 digits")
	}
	acct, err := call(s, c, s.opts.CallTimeout, s.core.GetAccount, &corev1.GetAccountRequest{Account: &corev1.AccountRef{WaId: waID, Caller: principalOf(c).caller()}})
	if err != nil {
		return err
	}
	if acct.GetState() != "verified" || acct.GetWaId() == "" {
		return apiErr(http.StatusBadRequest, errcode.NotReady, "the account %s is not verified: finish POST /v1/account/verify first", acct.GetWaId())
	}
	k, err := s.auth.CreateAPIKey(c.Request().Context(), acct.GetWaId(), principalOf(c).username)
	if err != nil {
		return internal(err)
	}
	return c.JSON(http.StatusCreated, apiKeysResponse[newKeyItem]{
		APIKeys: []newKeyItem{{Key: k.Key, Prefix: k.Prefix, WaID: k.WaID}},
		Meta:    s.meta,
	})
}

// listAPIKeys: GET /v1/account/api_keys (admin), without the secrets.
func (s *Server) listAPIKeys(c echo.Context) error {
	keys, err := s.auth.ListAPIKeys(c.Request().Context())
	if err != nil {
		return internal(err)
	}
	items := make([]keyItem, 0, len(keys))
	for _, k := range keys {
		items = append(items, keyItem{Prefix: k.Prefix, WaID: k.WaID, CreatedBy: k.CreatedBy, CreatedAt: formatTime(k.CreatedAt)})
	}
	return c.JSON(http.StatusOK, apiKeysResponse[keyItem]{APIKeys: items, Meta: s.meta})
}

// deleteAPIKey: DELETE /v1/account/api_keys/{prefix} (admin).
func (s *Server) deleteAPIKey(c echo.Context) error {
	if err := s.auth.RevokeAPIKey(c.Request().Context(), c.Param("prefix")); err != nil {
		return fromAuth(err)
	}
	return c.JSON(http.StatusOK, metaOnly{Meta: s.meta})
}

// checkNumber validates a business number's cc and phone_number.
func checkNumber(cc, national string) error {
	if _, err := phone.FromParts(cc, national); err != nil {
		return invalid("%s", err.Error())
	}
	return nil
}

// setTwoStep: POST /v1/settings/account/two-step {"pin"} (admin or API key)
// turns two-step verification on or changes its pin; the network asks for
// the pin when another deployment registers the number.
func (s *Server) setTwoStep(c echo.Context) error {
	o, err := readObject(c, "pin")
	if err != nil {
		return err
	}
	pin, err := requiredString(o, "pin")
	if err != nil {
		return err
	}
	if len(pin) != 6 || !phone.Digits(pin) {
		return invalid("pin must be 6 digits")
	}
	return s.twoStep(c, pin)
}

// clearTwoStep: DELETE /v1/settings/account/two-step (admin or API key).
func (s *Server) clearTwoStep(c echo.Context) error {
	if _, err := readObject(c); err != nil {
		return err
	}
	return s.twoStep(c, "")
}

func (s *Server) twoStep(c echo.Context, pin string) error {
	req := &corev1.SetTwoStepRequest{Account: principalOf(c).account(), Pin: pin}
	if _, err := call(s, c, s.opts.CallTimeout, s.core.SetTwoStep, req); err != nil {
		return err
	}
	return c.JSON(http.StatusOK, metaOnly{Meta: s.meta})
}
