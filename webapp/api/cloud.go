package api

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/openwaba/openwaba/api/errcode"
	"github.com/openwaba/openwaba/api/graph"
	"github.com/openwaba/openwaba/api/message"
	corev1 "github.com/openwaba/openwaba/proto/gen/core/v1"
)

// The Cloud API surface: Graph routes over the same registry, gRPC calls
// and coreapps as the on-prem routes (no second send path). Every Cloud
// route renders its errors in the Graph envelope (package api/graph maps
// the on-prem codes); a Graph version from v17.0 up is accepted.
//
//	POST   /{v}/{phone-number-id}/messages                send, or mark read
//	POST   /{v}/{phone-number-id}/media                   multipart upload → {id}
//	GET    /{v}/{media-id}                                → {url, mime_type, sha256, file_size, id}
//	DELETE /{v}/{media-id}                                → {success}
//	GET    /{v}/{phone-number-id}                         the number
//	POST   /{v}/{phone-number-id}                         webhook_configuration.override_callback_uri
//	POST   /{v}/{template-id}                             edit a template
//	GET    /{v}/{waba-id}                                 the business account
//	GET    /{v}/{waba-id}/phone_numbers                   its numbers
//	GET|POST|DELETE /{v}/{waba-id}/message_templates      templates (cloud_templates.go)
//	GET    /{v}/{template-id}                             one template
//
// 360dialog's Cloud flavour serves the same bodies without the version and
// the number, the number being the D360-API-KEY's: POST /messages,
// POST /media, GET|DELETE /{media-id}.
//
// Authentication: "Authorization: Bearer <API key>" (the per-number keys
// of /v1/account/api_keys, tried first) or a login token; D360-API-KEY
// also works. A bad one is Graph error 190 (HTTP 401).

// graphKey marks a request of a Cloud route.
const graphKey = "openwaba.graph"

// isGraph reports whether c is a Cloud route's request.
func isGraph(c echo.Context) bool {
	v, _ := c.Get(graphKey).(bool)
	return v
}

// graphRoute marks a Cloud route's request (its errors are Graph's) after
// checking the version segment; a path whose first segment is no Graph
// version is not a Cloud route (on-prem 404).
func (s *Server) graphRoute(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		switch {
		case hasParam(c, "version") && !graph.ValidVersion(c.Param("version")),
			!hasParam(c, "version") && hasParam(c, "id") && c.Path() != mediaURLPath+":id" && !cloudMediaID(c.Param("id")):
			return s.notCloud(c)
		}
		c.Set(graphKey, true)
		return next(c)
	}
}

// notCloud answers a path that only the Cloud routes' patterns matched as
// the on-prem routes alone would have: 405 on a path they serve with
// another method, else 404.
func (s *Server) notCloud(c echo.Context) error {
	pc := s.onprem.NewContext(c.Request(), c.Response())
	s.onprem.Router().Find(c.Request().Method, echo.GetPath(c.Request()), pc)
	return pc.Handler()(pc)
}

// cloudMediaID reports whether id has the shape of a media id (a UUID):
// 360dialog's GET|DELETE /{media-id} answer nothing else.
func cloudMediaID(id string) bool {
	if len(id) != 36 {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		switch {
		case i == 8 || i == 13 || i == 18 || i == 23:
			if c != '-' {
				return false
			}
		case c >= '0' && c <= '9', c >= 'a' && c <= 'f', c >= 'A' && c <= 'F':
		default:
			return false
		}
	}
	return true
}

func hasParam(c echo.Context, name string) bool {
	for _, n := range c.ParamNames() {
		if n == name {
			return true
		}
	}
	return false
}

// graphError renders e in the Graph envelope.
func (s *Server) graphError(c echo.Context, e *Error) error {
	code, st := graph.FromOnPrem(e.Code, e.Status)
	sub := 0
	if e.Code == errcode.NotFound && code == graph.InvalidParameter {
		sub = graph.SubcodeNoObject
	}
	details := e.Details
	if details == "" {
		details = e.Title
	}
	if code == graph.Throughput && c.Response().Header().Get("Retry-After") == "" {
		c.Response().Header().Set("Retry-After", "1") // Kapso and others honour it
	}
	if c.Request().Method == http.MethodHead {
		return c.NoContent(st)
	}
	return c.JSON(st, graph.NewError(code, sub, details, requestID(c)))
}

// noObject is Graph's answer for an id that names nothing the caller may
// use (100, subcode 33).
func noObject(c echo.Context, id string) *Error {
	return apiErr(http.StatusBadRequest, errcode.NotFound, "Unsupported %s request. Object with ID '%s' does not exist, cannot be loaded due to missing permissions, or does not support this operation",
		strings.ToLower(c.Request().Method), id)
}

// cloudAccount is the AccountRef of a Cloud request for the number with
// account id n (0: the principal's own, 360dialog's routes).
func cloudAccount(c echo.Context, n int64) *corev1.AccountRef {
	ref := principalOf(c).account()
	if n != 0 {
		ref.PhoneNumberId = graph.PhoneNumberID(n)
	}
	return ref
}

// mediaAccount is the AccountRef of a media route: the number of the
// phone_number_id query parameter when given (SDKs send it), else the
// principal's.
func mediaAccount(c echo.Context) (*corev1.AccountRef, error) {
	v := c.QueryParam("phone_number_id")
	if v == "" {
		return cloudAccount(c, 0), nil
	}
	k, n := graph.Parse(v)
	if k != graph.PhoneNumber {
		return nil, noObject(c, v)
	}
	return cloudAccount(c, n), nil
}

// pathID returns what the {id} segment names.
func pathID(c echo.Context) (string, graph.Kind, int64) {
	id := c.Param("id")
	k, n := graph.Parse(id)
	return id, k, n
}

// numberOf is the account id of the {id} segment, which must be a
// phone_number_id; 0 on the routes without one.
func numberOf(c echo.Context) (int64, error) {
	if !hasParam(c, "id") {
		return 0, nil
	}
	id, k, n := pathID(c)
	if k != graph.PhoneNumber {
		return 0, noObject(c, id)
	}
	return n, nil
}

type successResponse struct {
	Success bool `json:"success"`
}

type cloudSent struct {
	MessagingProduct string        `json:"messaging_product"`
	Contacts         []cloudInput  `json:"contacts"`
	Messages         []cloudSentID `json:"messages"`
}

type cloudInput struct {
	Input string `json:"input"`
	WaID  string `json:"wa_id"`
}

type cloudSentID struct {
	ID string `json:"id"`
}

// cloudMessages: POST /{v}/{phone-number-id}/messages and 360dialog's
// POST /messages: a send (the registry's Cloud rules), or a mark read
// ({"status":"read","message_id"}).
func (s *Server) cloudMessages(c echo.Context) error {
	n, err := numberOf(c)
	if err != nil {
		return err
	}
	b, err := readBody(c)
	if err != nil {
		return err
	}
	var peek struct {
		Status json.RawMessage `json:"status"`
		To     string          `json:"to"`
	}
	_ = json.Unmarshal(b, &peek) // a body that is not an object is ParseSendFrom's to refuse
	if peek.Status != nil {
		return s.cloudMarkRead(c, n, b)
	}
	m, err := message.Default.ParseSendFrom(message.Cloud, b)
	if err != nil {
		return err
	}
	input := peek.To
	req := &corev1.SendMessageRequest{Account: cloudAccount(c, n), RequestId: requestID(c), To: m.To.String(), RecipientType: m.RecipientType,
		Content: m.Content, CallbackData: m.CallbackData, HydrateNow: true}
	resp, err := call(s, c, s.opts.SendTimeout, s.core.SendMessage, req)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, cloudSent{MessagingProduct: "whatsapp", Contacts: []cloudInput{{Input: input, WaID: m.To.String()}},
		Messages: []cloudSentID{{ID: resp.GetId()}}})
}

// cloudMarkRead: {"messaging_product":"whatsapp","status":"read",
// "message_id", "typing_indicator"?} → {"success":true}.
func (s *Server) cloudMarkRead(c echo.Context, n int64, b []byte) error {
	o, err := parseObject("", b, "messaging_product", "status", "message_id", "typing_indicator")
	if err != nil {
		return err
	}
	mp, err := requiredString(o, "messaging_product")
	if err != nil {
		return err
	}
	if mp != "whatsapp" {
		return invalid(`messaging_product must be "whatsapp"`)
	}
	st, err := requiredString(o, "status")
	if err != nil {
		return err
	}
	if st != "read" {
		return invalid(`status must be "read"`)
	}
	id, err := requiredString(o, "message_id")
	if err != nil {
		return err
	}
	if len(id) > 256 {
		return invalid("message_id is not a message id")
	}
	if _, _, err := field[map[string]any](o, "typing_indicator"); err != nil {
		return err // accepted (openwaba shows no typing indicator)
	}
	if _, err := call(s, c, s.opts.CallTimeout, s.core.MarkRead, &corev1.MarkReadRequest{Account: cloudAccount(c, n), MessageId: id}); err != nil {
		return err
	}
	return c.JSON(http.StatusOK, successResponse{Success: true})
}

// cloudPhoneNumber is Graph's phone number object.
type cloudPhoneNumber struct {
	ID                     string `json:"id"`
	DisplayPhoneNumber     string `json:"display_phone_number"`
	VerifiedName           string `json:"verified_name"`
	QualityRating          string `json:"quality_rating"`
	CodeVerificationStatus string `json:"code_verification_status"`
	PlatformType           string `json:"platform_type"`
	Throughput             struct {
		Level string `json:"level"`
	} `json:"throughput"`
}

func phoneNumberObject(a *corev1.Account) cloudPhoneNumber {
	p := cloudPhoneNumber{ID: strconv.FormatInt(a.GetPhoneNumberId(), 10), DisplayPhoneNumber: a.GetWaId(), VerifiedName: a.GetVname(),
		QualityRating: "GREEN", CodeVerificationStatus: "NOT_VERIFIED", PlatformType: "NOT_APPLICABLE"}
	if a.GetState() == "verified" {
		p.CodeVerificationStatus, p.PlatformType = "VERIFIED", "CLOUD_API"
	}
	p.Throughput.Level = "STANDARD"
	return p
}

type cursors struct {
	Before string `json:"before,omitempty"`
	After  string `json:"after"`
}

type paging struct {
	Cursors cursors `json:"cursors"`
	Next    string  `json:"next,omitempty"`
}

type phoneNumbersPage struct {
	Data   []cloudPhoneNumber `json:"data"`
	Paging paging             `json:"paging"`
}

// account reads the number with account id n as the caller may see it.
func (s *Server) account(c echo.Context, n int64) (*corev1.Account, error) {
	return call(s, c, s.opts.CallTimeout, s.core.GetAccount, &corev1.GetAccountRequest{Account: cloudAccount(c, n)})
}

// cloudPhoneNumbers: GET /{v}/{waba-id}/phone_numbers.
func (s *Server) cloudPhoneNumbers(c echo.Context) error {
	id, k, n := pathID(c)
	if k != graph.WABA {
		return noObject(c, id)
	}
	a, err := s.account(c, n)
	if err != nil {
		return err
	}
	p := phoneNumberObject(a)
	return c.JSON(http.StatusOK, phoneNumbersPage{Data: []cloudPhoneNumber{p}, Paging: paging{Cursors: cursors{Before: p.ID, After: p.ID}}})
}

type cloudWABA struct {
	ID                        string `json:"id"`
	Name                      string `json:"name"`
	MessageTemplateNamespace  string `json:"message_template_namespace,omitempty"`
	Currency                  string `json:"currency"`
	TimezoneID                string `json:"timezone_id"`
	AccountReviewStatus       string `json:"account_review_status"`
	BusinessVerificationState string `json:"business_verification_status"`
}

// cloudGet: GET /{v}/{id} and 360dialog's GET /{media-id}: a number, a
// business account, a template or a file's metadata.
func (s *Server) cloudGet(c echo.Context) error {
	id, k, n := pathID(c)
	if k != graph.Other && !hasParam(c, "version") {
		return noObject(c, id)
	}
	switch k {
	case graph.PhoneNumber:
		a, err := s.account(c, n)
		if err != nil {
			return err
		}
		return c.JSON(http.StatusOK, phoneNumberObject(a))
	case graph.WABA:
		a, err := s.account(c, n)
		if err != nil {
			return err
		}
		return c.JSON(http.StatusOK, cloudWABA{ID: id, Name: a.GetVname(), Currency: "USD", TimezoneID: "1", AccountReviewStatus: "APPROVED", BusinessVerificationState: "verified"})
	case graph.Template:
		return s.cloudTemplate(c, n)
	}
	return s.cloudMediaInfo(c, id)
}

// cloudDelete: DELETE /{v}/{media-id} and 360dialog's DELETE /{media-id}.
func (s *Server) cloudDelete(c echo.Context) error {
	id, k, _ := pathID(c)
	if k != graph.Other || !cloudMediaID(id) {
		return noObject(c, id)
	}
	ref, err := mediaAccount(c)
	if err != nil {
		return err
	}
	if _, err := call(s, c, s.opts.CallTimeout, s.core.DeleteMedia, &corev1.DeleteMediaRequest{Account: ref, Id: id}); err != nil {
		return err
	}
	return c.JSON(http.StatusOK, successResponse{Success: true})
}

// cloudPost: POST /{v}/{template-id} edits a template
// (cloud_templates.go); POST /{v}/{phone-number-id} with Graph's per-number webhook
// override {"webhook_configuration":{"override_callback_uri",
// "verify_token"}} (the app secret stays the one set with
// /v1/configs/webhook, or app_secret in the same object).
func (s *Server) cloudPost(c echo.Context) error {
	if _, k, tid := pathID(c); k == graph.Template {
		return s.cloudEditTemplate(c, tid)
	}
	n, err := numberOf(c)
	if err != nil {
		return err
	}
	o, err := readObject(c, "webhook_configuration")
	if err != nil {
		return err
	}
	wc, present, err := nested(o, "webhook_configuration", "override_callback_uri", "verify_token", "app_secret")
	if err != nil {
		return err
	}
	if !present {
		return missing("webhook_configuration is required")
	}
	uri, err := requiredString(wc, "override_callback_uri")
	if err != nil {
		return err
	}
	cfg := &corev1.WebhookConfig{Url: uri, Format: "cloud"}
	if cfg.VerifyToken, _, err = field[string](wc, "verify_token"); err != nil {
		return err
	}
	if cfg.AppSecret, _, err = field[string](wc, "app_secret"); err != nil {
		return err
	}
	if _, err := call(s, c, s.opts.CallTimeout, s.core.SetWebhookConfig, &corev1.SetWebhookConfigRequest{Account: cloudAccount(c, n), Config: cfg}); err != nil {
		return err
	}
	return c.JSON(http.StatusOK, successResponse{Success: true})
}

// Signed media URLs: GET /{v}/{media-id} answers a URL that downloads the
// file without credentials for MediaURLTTL (Meta's URLs last 5 minutes;
// some SDKs send no Authorization header to a host that is not Meta's,
// others send the bearer token, which the route ignores). The signature is
// an HMAC-SHA256, with the deployment's media URL key, of the number, the
// media id and the expiry.

// MediaURLTTL is how long a media URL works.
const MediaURLTTL = 5 * time.Minute

// mediaURLPath is the route of signed downloads.
const mediaURLPath = "/cloud/media/"

func (s *Server) mediaSignature(pnid int64, id string, expires int64) string {
	m := hmac.New(sha256.New, s.mediaKey)
	fmt.Fprintf(m, "%d\n%s\n%d", pnid, id, expires)
	return hex.EncodeToString(m.Sum(nil))
}

type cloudMedia struct {
	MessagingProduct string `json:"messaging_product"`
	URL              string `json:"url"`
	MimeType         string `json:"mime_type"`
	SHA256           string `json:"sha256"`
	FileSize         int64  `json:"file_size"`
	ID               string `json:"id"`
}

// cloudMediaInfo: a file's metadata and its signed URL.
func (s *Server) cloudMediaInfo(c echo.Context, id string) error {
	if !cloudMediaID(id) {
		return noObject(c, id)
	}
	ref, err := mediaAccount(c)
	if err != nil {
		return err
	}
	ctx, cancel := s.coreContext(c, s.opts.CallTimeout)
	defer cancel()
	req := &corev1.DownloadMediaRequest{Account: ref, Id: id, HeaderOnly: true}
	h, err := retry(s, c, ctx, func(ctx context.Context) (*corev1.DownloadMediaHeader, error) {
		st, err := s.core.DownloadMedia(ctx, req)
		if err != nil {
			return nil, err
		}
		m, err := st.Recv()
		if err != nil {
			return nil, err
		}
		if m.GetHeader() == nil {
			return nil, internal(errors.New("DownloadMedia did not start with a header"))
		}
		return m.GetHeader(), nil
	})
	if err != nil {
		return err
	}
	// The number the file belongs to, for the URL.
	a, err := call(s, c, s.opts.CallTimeout, s.core.GetAccount, &corev1.GetAccountRequest{Account: ref})
	if err != nil {
		return err
	}
	pnid := a.GetPhoneNumberId()
	exp := s.opts.Now().Add(MediaURLTTL).Unix()
	u := c.Scheme() + "://" + c.Request().Host + mediaURLPath + id + "?pnid=" + strconv.FormatInt(pnid, 10) +
		"&expires=" + strconv.FormatInt(exp, 10) + "&signature=" + s.mediaSignature(pnid, id, exp)
	return c.JSON(http.StatusOK, cloudMedia{MessagingProduct: "whatsapp", URL: u, MimeType: h.GetMimeType(), SHA256: h.GetSha256(), FileSize: h.GetSize(), ID: id})
}

// signedMedia: GET /cloud/media/{id}?pnid&expires&signature (no
// credentials): the file, while the URL is valid.
func (s *Server) signedMedia(c echo.Context) error {
	id := c.Param("id")
	q := c.QueryParams()
	pnid, err1 := strconv.ParseInt(q.Get("pnid"), 10, 64)
	exp, err2 := strconv.ParseInt(q.Get("expires"), 10, 64)
	sig := q.Get("signature")
	if err1 != nil || err2 != nil || !validMediaID(id) ||
		!hmac.Equal([]byte(sig), []byte(s.mediaSignature(pnid, id, exp))) {
		return forbidden("the media URL is not valid")
	}
	if s.opts.Now().Unix() > exp {
		return forbidden("the media URL expired: ask GET /{version}/{media-id} for a new one")
	}
	return s.serveMedia(c, &corev1.AccountRef{PhoneNumberId: pnid, Caller: corev1.Caller_CALLER_API_KEY}, id)
}

// newMediaKey is a random media URL key, for a Server given none (one
// webapp: its URLs work on it only).
func newMediaKey(log *slog.Logger) []byte {
	k := make([]byte, 32)
	rand.Read(k)
	log.Debug("media URLs are signed with a key of this process only (Options.MediaURLKey is not set)")
	return k
}
