// Package errcode is the one catalog of the on-prem API's error codes and
// their titles (developers.facebook.com/docs/whatsapp/on-premises/errors,
// and the table in the project's on-prem reference). Every layer names a
// code by its constant: the webapp's error envelope, coreapp's gRPC error
// details, the errors of failed-status and inbound webhooks.
package errcode

import "fmt"

// Code is an on-prem error code.
type Code int

// The on-prem codes openwaba uses. Titles are in titles.
const (
	MediaDownload        Code = 400  // couldn't download the sender's media
	MessageNotValid      Code = 408  // pending too long
	MessageExpired       Code = 410  // TTL elapsed
	RateLimitHit         Code = 429  // too many messages from the number
	ReEngagement         Code = 470  // more than 24 h since the customer last wrote
	SpamRateLimit        Code = 471  // quality-based restriction
	UserPotentiallyMoved Code = 480  // identity change
	GenericStatus        Code = 500  // generic error (statuses)
	UnsupportedType      Code = 501  // inbound message type not supported
	Generic              Code = 1000 // generic error
	TooLong              Code = 1001 // message too long
	RecipientType        Code = 1002 // invalid recipient type
	Exists               Code = 1004 // resource already exists
	AccessDenied         Code = 1005 // access denied
	NotFound             Code = 1006 // resource not found
	RecipientBlocked     Code = 1007 // recipient blocked to receive message
	Missing              Code = 1008 // required parameter is missing
	Invalid              Code = 1009 // parameter value is not valid
	NotRequired          Code = 1010 // parameter is not required
	NotReady             Code = 1011 // service not ready
	UserNotValid         Code = 1013 // user is not valid
	Internal             Code = 1014 // internal error
	TooManyRequests      Code = 1015 // too many requests
	Overloaded           Code = 1016 // system overloaded
	NotPrimaryMaster     Code = 1017 // master-only call on another node
	NotPrimaryCoreapp    Code = 1018 // the number's slot is held elsewhere
	BadUser              Code = 1021 // sender == recipient
	WebhookNotConfigured Code = 1022 // webhooks URL is not configured
	Database             Code = 1023 // database error occurred
	PasswordChange       Code = 1024 // password change required
	InvalidRequest       Code = 1025 // invalid request
	ReceiverIncapable    Code = 1026 // recipient cannot receive this type
	IdentityAck          Code = 1028 // identity change needs acknowledgement
	SenderLocked         Code = 1031 // sender account has been locked

	TemplateParamCount         Code = 2000
	TemplateMissing            Code = 2001
	TemplateFetchFailed        Code = 2002
	TemplatePackMissing        Code = 2003
	TemplateParamTooLong       Code = 2004
	TemplateHydratedTooLong    Code = 2005
	TemplateWhitespacePolicy   Code = 2006
	TemplateFormatCharPolicy   Code = 2007
	TemplateMediaUnsupported   Code = 2008
	TemplateComponentMissing   Code = 2009
	TemplateInvalidURL         Code = 2010
	TemplateInvalidPhone       Code = 2011
	TemplateParamFormat        Code = 2012
	TemplateButtonsUnsupported Code = 2013
	NamespaceEmpty             Code = 2014
	InvalidSections            Code = 2015 // interactive: invalid number of sections
	InvalidRows                Code = 2016 // interactive: invalid number of rows
	CharacterPolicy            Code = 2017 // interactive: character policy violated
	// NotEngaged is 360dialog's answer to blocking a contact that has not
	// written in the last 24 hours (docs.360dialog.com, "How to block
	// contacts").
	NotEngaged       Code = 2048
	TemplateRejected Code = 2060
	TemplatePaused   Code = 2061
	TemplateDisabled Code = 2062

	// CloudInvalidParameter is the Cloud API's 131009, which Meta documents
	// as the failed status of a reaction to a message that is not in the
	// conversation (developers.facebook.com/documentation/business-messaging/
	// whatsapp/messages/reaction-messages); openwaba uses it on both
	// surfaces for that case.
	CloudInvalidParameter Code = 131009
)

var titles = map[Code]string{
	MediaDownload:        "Media download error",
	MessageNotValid:      "Message is not valid",
	MessageExpired:       "Message expired",
	RateLimitHit:         "Rate limit hit",
	ReEngagement:         "Re-engagement message",
	SpamRateLimit:        "Spam rate limit hit",
	UserPotentiallyMoved: "User potentially changed",
	GenericStatus:        "Generic error",
	UnsupportedType:      "Message type is not currently supported",
	Generic:              "Generic error",
	TooLong:              "Message too long",
	RecipientType:        "Invalid recipient type",
	Exists:               "Resource already exists",
	AccessDenied:         "Access denied",
	NotFound:             "Resource not found",
	RecipientBlocked:     "Recipient blocked to receive message",
	Missing:              "Required parameter is missing",
	Invalid:              "Parameter value is not valid",
	NotRequired:          "Parameter is not required",
	NotReady:             "Service not ready",
	UserNotValid:         "User is not valid",
	Internal:             "Internal error",
	TooManyRequests:      "Too many requests",
	Overloaded:           "System overloaded",
	NotPrimaryMaster:     "Not Primary Master",
	NotPrimaryCoreapp:    "Not Primary Coreapp",
	BadUser:              "Bad user",
	WebhookNotConfigured: "Webhooks URL is not configured",
	Database:             "Database error occurred",
	PasswordChange:       "Password Change Required",
	InvalidRequest:       "Invalid Request",
	ReceiverIncapable:    "Receiver incapable",
	IdentityAck:          "User identity needs to be acknowledged",
	SenderLocked:         "Sender account has been locked",

	TemplateParamCount:         "Template Param Count Mismatch",
	TemplateMissing:            "Template Missing",
	TemplateFetchFailed:        "Template Fetch Failed",
	TemplatePackMissing:        "Template Pack Missing",
	TemplateParamTooLong:       "Template Param Length Too Long",
	TemplateHydratedTooLong:    "Template Hydrated Text Too Long",
	TemplateWhitespacePolicy:   "Template White Space Policy Violated",
	TemplateFormatCharPolicy:   "Template Format Character Policy Violated",
	TemplateMediaUnsupported:   "Template Media Format Unsupported",
	TemplateComponentMissing:   "Template Required Component Missing",
	TemplateInvalidURL:         "Template Invalid Hydrated URL",
	TemplateInvalidPhone:       "Template Invalid Phone Number",
	TemplateParamFormat:        "Template Parameter Format Mismatch",
	TemplateButtonsUnsupported: "Template Buttons Unsupported",
	NamespaceEmpty:             "Expected Namespace is Empty",
	InvalidSections:            "Invalid number of sections",
	InvalidRows:                "Invalid number of rows",
	CharacterPolicy:            "Character policy violated",
	NotEngaged:                 "Not engaged contact",
	TemplateRejected:           "Template rejected",
	TemplatePaused:             "Template paused",
	TemplateDisabled:           "Template disabled",

	CloudInvalidParameter: "Parameter value is not valid",
}

// Title is the code's on-prem title ("Generic error" for a code the
// catalog does not know).
func (c Code) Title() string {
	if t, ok := titles[c]; ok {
		return t
	}
	return titles[Generic]
}

// statusTitles are the titles a failed status carries where they differ
// from the catalog's (the on-prem status webhook reference shows 470 so).
var statusTitles = map[Code]string{
	ReEngagement: "Message failed to send because more than 24 hours have passed since the customer last replied to this number",
}

// StatusTitle is the code's title in a status webhook's errors.
func (c Code) StatusTitle() string {
	if t, ok := statusTitles[c]; ok {
		return t
	}
	return c.Title()
}

// Known reports whether the catalog has the code.
func (c Code) Known() bool { _, ok := titles[c]; return ok }

// Catalog returns every code of the catalog, in no order.
func Catalog() []Code {
	out := make([]Code, 0, len(titles))
	for c := range titles {
		out = append(out, c)
	}
	return out
}

// Error is one on-prem error: a code and what failed. It is what parsing
// and checks return; each boundary renders it in its own envelope.
type Error struct {
	Code    Code
	Details string
}

func (e *Error) Error() string { return fmt.Sprintf("%d %s: %s", e.Code, e.Code.Title(), e.Details) }

// New returns an Error with formatted details.
func New(c Code, format string, args ...any) *Error {
	return &Error{Code: c, Details: fmt.Sprintf(format, args...)}
}
