package graph

import (
	"net/http"
	"strconv"

	"github.com/openwaba/openwaba/api/errcode"
)

// Code is a Graph (Cloud API) error code.
type Code int

// The Graph codes openwaba answers.
const (
	InvalidParameter  Code = 100    // invalid parameter, unknown object or field
	AccessToken       Code = 190    // access token invalid, expired or revoked
	Permission        Code = 200    // permissions error
	Throughput        Code = 130429 // rate limit hit (throughput)
	SomethingWrong    Code = 131000 // something went wrong
	MissingParameter  Code = 131008 // required parameter is missing
	InvalidValue      Code = 131009 // parameter value is not valid
	RecipientIsSender Code = 131021 // recipient cannot be sender
	Undeliverable     Code = 131026 // message undeliverable
	ReEngagement      Code = 131047 // more than 24 hours since the customer's last message
	SpamRate          Code = 131048 // spam rate limit hit
	UnsupportedType   Code = 131051 // unsupported message type
	MediaDownload     Code = 131052 // media download error
	MediaUpload       Code = 131053 // media upload error
	PairRate          Code = 131056 // pair rate limit hit
	TemplateParams    Code = 132000 // template parameter count mismatch
	TemplateMissing   Code = 132001 // template does not exist (in that language) or is not approved
	TemplateTextLong  Code = 132005 // translated text too long
	TemplateFormat    Code = 132007 // template format character policy violated
	TemplateParamFmt  Code = 132012 // template parameter format mismatch
	TemplatePaused    Code = 132015 // template is paused
	TemplateDisabled  Code = 132016 // template is disabled
	NotRegistered     Code = 133010 // phone number not registered
)

var titles = map[Code]string{
	InvalidParameter:  "Invalid parameter",
	AccessToken:       "Invalid OAuth access token - Cannot parse access token",
	Permission:        "Permissions error",
	Throughput:        "Rate limit hit",
	SomethingWrong:    "Something went wrong",
	MissingParameter:  "Required parameter is missing",
	InvalidValue:      "Parameter value is not valid",
	RecipientIsSender: "Recipient cannot be sender",
	Undeliverable:     "Message undeliverable",
	ReEngagement:      "Re-engagement message",
	SpamRate:          "Spam rate limit hit",
	UnsupportedType:   "Message type unknown",
	MediaDownload:     "Media download error",
	MediaUpload:       "Media upload error",
	PairRate:          "Pair rate limit hit",
	TemplateParams:    "Number of parameters does not match the expected number of params",
	TemplateMissing:   "Template name does not exist in the translation",
	TemplateTextLong:  "Translated text too long",
	TemplateFormat:    "Template Format Character Policy Violated",
	TemplateParamFmt:  "Parameter format does not match format in the created template",
	TemplatePaused:    "Template is Paused",
	TemplateDisabled:  "Template is Disabled",
	NotRegistered:     "Phone number Not Registered",
}

// Title is Meta's title of the code.
func (c Code) Title() string {
	if t, ok := titles[c]; ok {
		return t
	}
	return titles[SomethingWrong]
}

// SubcodeNoObject is Meta's error_subcode of an unknown object on GET /{id}
// and POST /{id} ("Unsupported get request. Object with ID … does not
// exist").
const SubcodeNoObject = 33

// mapping is one on-prem code's Graph code and the HTTP status of a
// synchronous answer (0: the status the on-prem answer had).
type mapping struct {
	code   Code
	status int
}

// fromOnPrem maps the on-prem catalog onto Graph. Codes that on-prem
// reports only as failed statuses (470, 1013, …) map to the code the
// Cloud status carries.
var fromOnPrem = map[errcode.Code]mapping{
	errcode.MediaDownload:        {MediaDownload, 0},
	errcode.MessageNotValid:      {SomethingWrong, 0},
	errcode.MessageExpired:       {SomethingWrong, 0},
	errcode.RateLimitHit:         {PairRate, http.StatusTooManyRequests},
	errcode.ReEngagement:         {ReEngagement, 0},
	errcode.SpamRateLimit:        {SpamRate, 0},
	errcode.UserPotentiallyMoved: {Undeliverable, 0},
	errcode.GenericStatus:        {SomethingWrong, 0},
	errcode.UnsupportedType:      {UnsupportedType, 0},
	errcode.Generic:              {SomethingWrong, http.StatusInternalServerError},
	errcode.TooLong:              {InvalidValue, http.StatusBadRequest},
	errcode.RecipientType:        {InvalidValue, http.StatusBadRequest},
	errcode.Exists:               {InvalidParameter, http.StatusBadRequest},
	errcode.AccessDenied:         {Permission, http.StatusForbidden},
	errcode.NotFound:             {InvalidParameter, http.StatusBadRequest},
	errcode.RecipientBlocked:     {Undeliverable, 0},
	errcode.Missing:              {MissingParameter, http.StatusBadRequest},
	errcode.Invalid:              {InvalidValue, http.StatusBadRequest},
	errcode.NotRequired:          {InvalidParameter, http.StatusBadRequest},
	errcode.NotReady:             {NotRegistered, http.StatusBadRequest},
	errcode.UserNotValid:         {Undeliverable, 0},
	errcode.Internal:             {SomethingWrong, 0},
	errcode.TooManyRequests:      {Throughput, http.StatusTooManyRequests},
	errcode.Overloaded:           {Throughput, http.StatusTooManyRequests},
	errcode.NotPrimaryMaster:     {SomethingWrong, http.StatusServiceUnavailable},
	errcode.NotPrimaryCoreapp:    {SomethingWrong, http.StatusServiceUnavailable},
	errcode.BadUser:              {RecipientIsSender, http.StatusBadRequest},
	errcode.WebhookNotConfigured: {InvalidParameter, http.StatusBadRequest},
	errcode.Database:             {SomethingWrong, http.StatusInternalServerError},
	errcode.PasswordChange:       {InvalidParameter, 0},
	errcode.InvalidRequest:       {InvalidParameter, http.StatusBadRequest},
	errcode.ReceiverIncapable:    {Undeliverable, 0},
	errcode.IdentityAck:          {Undeliverable, 0},
	errcode.SenderLocked:         {Permission, http.StatusForbidden},

	errcode.TemplateParamCount:         {TemplateParams, http.StatusBadRequest},
	errcode.TemplateMissing:            {TemplateMissing, http.StatusNotFound},
	errcode.TemplateFetchFailed:        {SomethingWrong, http.StatusServiceUnavailable},
	errcode.TemplatePackMissing:        {TemplateMissing, http.StatusNotFound},
	errcode.TemplateParamTooLong:       {TemplateTextLong, http.StatusBadRequest},
	errcode.TemplateHydratedTooLong:    {TemplateTextLong, http.StatusBadRequest},
	errcode.TemplateWhitespacePolicy:   {TemplateFormat, http.StatusBadRequest},
	errcode.TemplateFormatCharPolicy:   {TemplateFormat, http.StatusBadRequest},
	errcode.TemplateMediaUnsupported:   {TemplateParamFmt, http.StatusBadRequest},
	errcode.TemplateComponentMissing:   {TemplateParams, http.StatusBadRequest},
	errcode.TemplateInvalidURL:         {TemplateParamFmt, http.StatusBadRequest},
	errcode.TemplateInvalidPhone:       {TemplateParamFmt, http.StatusBadRequest},
	errcode.TemplateParamFormat:        {TemplateParamFmt, http.StatusBadRequest},
	errcode.TemplateButtonsUnsupported: {TemplateParamFmt, http.StatusBadRequest},
	errcode.NamespaceEmpty:             {MissingParameter, http.StatusBadRequest},
	errcode.InvalidSections:            {InvalidValue, http.StatusBadRequest},
	errcode.InvalidRows:                {InvalidValue, http.StatusBadRequest},
	errcode.CharacterPolicy:            {InvalidValue, http.StatusBadRequest},
	errcode.NotEngaged:                 {InvalidParameter, http.StatusBadRequest},
	errcode.TemplateRejected:           {TemplateMissing, http.StatusNotFound},
	errcode.TemplatePaused:             {TemplatePaused, http.StatusBadRequest},
	errcode.TemplateDisabled:           {TemplateDisabled, http.StatusBadRequest},

	errcode.CloudInvalidParameter: {InvalidValue, http.StatusBadRequest},
}

// FromOnPrem is the Graph code of an on-prem code and the HTTP status of a
// synchronous Graph answer; onpremStatus is the status the on-prem answer
// had, kept where Graph does not fix one (5xx stays 5xx). An on-prem 401 is
// Graph's 190, whatever the code.
func FromOnPrem(c errcode.Code, onpremStatus int) (Code, int) {
	if onpremStatus == http.StatusUnauthorized {
		return AccessToken, http.StatusUnauthorized
	}
	m, ok := fromOnPrem[c]
	if !ok {
		if onpremStatus >= 400 && onpremStatus < 500 {
			return InvalidParameter, onpremStatus
		}
		return SomethingWrong, http.StatusInternalServerError
	}
	st := m.status
	switch {
	case st == 0 && onpremStatus != 0:
		st = onpremStatus
	case st == 0:
		st = http.StatusBadRequest
	}
	return m.code, st
}

// Envelope is a Graph error answer: {"error":{…}}.
type Envelope struct {
	Error Error `json:"error"`
}

// Error is the body of a Graph error.
type Error struct {
	// Message is "(#code) title".
	Message   string    `json:"message"`
	Type      string    `json:"type"`
	Code      Code      `json:"code"`
	Subcode   int       `json:"error_subcode,omitempty"`
	Data      ErrorData `json:"error_data"`
	FBTraceID string    `json:"fbtrace_id"`
}

// ErrorData is error_data.
type ErrorData struct {
	MessagingProduct string `json:"messaging_product"`
	Details          string `json:"details"`
}

// NewError is the envelope of code with details; traceID (the request id)
// is fbtrace_id.
func NewError(c Code, subcode int, details, traceID string) Envelope {
	return Envelope{Error{
		Message:   "(#" + strconv.Itoa(int(c)) + ") " + c.Title(),
		Type:      "OAuthException",
		Code:      c,
		Subcode:   subcode,
		Data:      ErrorData{MessagingProduct: "whatsapp", Details: details},
		FBTraceID: traceID,
	}}
}

// StatusError is an error of a Cloud status or inbound webhook:
// {code, title, message, error_data:{details}}.
type StatusError struct {
	Code    Code   `json:"code"`
	Title   string `json:"title"`
	Message string `json:"message"`
	Data    struct {
		Details string `json:"details"`
	} `json:"error_data"`
}

// StatusErrorOf is the Cloud webhook error for an on-prem error.
func StatusErrorOf(c errcode.Code, details string) StatusError {
	g, _ := FromOnPrem(c, 0)
	if c == errcode.CloudInvalidParameter {
		g = InvalidValue
	}
	e := StatusError{Code: g, Title: g.Title(), Message: g.Title()}
	e.Data.Details = details
	if details == "" {
		e.Data.Details = g.Title()
	}
	return e
}
