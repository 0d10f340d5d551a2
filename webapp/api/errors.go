package api

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"github.com/labstack/echo/v4"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/openwaba/openwaba/api/errcode"
)

// Error is an API failure: the HTTP status and one on-prem error. cause, if
// set, is logged and never sent.
type Error struct {
	Status  int
	Code    errcode.Code
	Title   string
	Details string
	// RetryAfter, when set, is sent as the Retry-After header (whole
	// seconds, rounded up).
	RetryAfter time.Duration
	// d360 marks a refused D360-API-KEY: its meta also carries 360dialog's
	// httpCode, developerMessage and success fields (on-prem routes).
	d360  bool
	cause error
}

func (e *Error) Error() string {
	s := fmt.Sprintf("%d %d %s", e.Status, e.Code, e.Title)
	if e.Details != "" {
		s += ": " + e.Details
	}
	if e.cause != nil {
		s += ": " + e.cause.Error()
	}
	return s
}

func (e *Error) Unwrap() error { return e.cause }

func apiErr(httpStatus int, code errcode.Code, format string, args ...any) *Error {
	return &Error{Status: httpStatus, Code: code, Title: code.Title(), Details: fmt.Sprintf(format, args...)}
}

// fromCode renders an error of the catalog (request parsing and checks):
// HTTP 400, with the error's code and details.
func fromCode(e *errcode.Error) *Error {
	return &Error{Status: http.StatusBadRequest, Code: e.Code, Title: e.Code.Title(), Details: e.Details}
}

func missing(format string, args ...any) *Error {
	return apiErr(http.StatusBadRequest, errcode.Missing, format, args...)
}

func invalid(format string, args ...any) *Error {
	return apiErr(http.StatusBadRequest, errcode.Invalid, format, args...)
}

func notRequired(format string, args ...any) *Error {
	return apiErr(http.StatusBadRequest, errcode.NotRequired, format, args...)
}

func unauthorized(details string) *Error {
	return apiErr(http.StatusUnauthorized, errcode.AccessDenied, "%s", details)
}

// invalidD360Key is an unknown or revoked D360-API-KEY. On the on-prem
// routes 360dialog answers it with its own envelope,
// {"meta":{"httpCode":401,"developerMessage":"Invalid api_key or token
// expired","success":false}} (docs.360dialog.com, "Error Messages"); the
// body carries that meta and the on-prem errors[] both, so clients written
// for either find what they look for.
func invalidD360Key() *Error {
	e := unauthorized(d360InvalidKey)
	e.d360 = true
	return e
}

const d360InvalidKey = "Invalid api_key or token expired"

func forbidden(details string) *Error {
	return apiErr(http.StatusForbidden, errcode.AccessDenied, "%s", details)
}

func notFound(format string, args ...any) *Error {
	return apiErr(http.StatusNotFound, errcode.NotFound, format, args...)
}

// tooManyRequests is HTTP 429 with error 1015 and Retry-After.
func tooManyRequests(retryAfter time.Duration, details string) *Error {
	e := apiErr(http.StatusTooManyRequests, errcode.TooManyRequests, "%s", details)
	e.RetryAfter = retryAfter
	return e
}

func internal(cause error) *Error {
	return &Error{Status: http.StatusInternalServerError, Code: errcode.Internal, Title: errcode.Internal.Title(), cause: cause}
}

// grpcHTTP maps a gRPC code to the HTTP status and the on-prem code used when
// the status carries no corev1.Error detail.
var grpcHTTP = map[codes.Code]struct {
	status int
	code   errcode.Code
}{
	codes.InvalidArgument:    {http.StatusBadRequest, errcode.Invalid},
	codes.OutOfRange:         {http.StatusBadRequest, errcode.Invalid},
	codes.NotFound:           {http.StatusNotFound, errcode.NotFound},
	codes.AlreadyExists:      {http.StatusConflict, errcode.Exists},
	codes.PermissionDenied:   {http.StatusForbidden, errcode.AccessDenied},
	codes.Unauthenticated:    {http.StatusUnauthorized, errcode.AccessDenied},
	codes.FailedPrecondition: {http.StatusBadRequest, errcode.NotReady},
	codes.ResourceExhausted:  {http.StatusTooManyRequests, errcode.TooManyRequests},
	codes.Unavailable:        {http.StatusServiceUnavailable, errcode.Internal},
	codes.DeadlineExceeded:   {http.StatusGatewayTimeout, errcode.Internal},
	codes.Aborted:            {http.StatusServiceUnavailable, errcode.Internal},
}

// toError turns any error a handler or middleware returned into the API
// error to render.
func toError(err error) *Error {
	var ae *Error
	if errors.As(err, &ae) {
		return ae
	}
	var ce *errcode.Error
	if errors.As(err, &ce) {
		return fromCode(ce)
	}
	var he *echo.HTTPError
	if errors.As(err, &he) {
		return fromHTTPError(he)
	}
	var gs interface{ GRPCStatus() *status.Status }
	if errors.As(err, &gs) {
		return fromStatus(gs.GRPCStatus(), err)
	}
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		return tooLarge(mbe.Limit)
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return &Error{Status: http.StatusGatewayTimeout, Code: errcode.Internal, Title: errcode.Internal.Title(), Details: "the request timed out", cause: err}
	}
	return internal(err)
}

func tooLarge(limit int64) *Error {
	return apiErr(http.StatusRequestEntityTooLarge, errcode.InvalidRequest, "the request body is larger than %d bytes", limit)
}

func fromHTTPError(he *echo.HTTPError) *Error {
	msg, _ := he.Message.(string)
	e := &Error{Status: he.Code, cause: he.Internal}
	switch he.Code {
	case http.StatusNotFound:
		e.Code, e.Details = errcode.NotFound, "unknown path"
	case http.StatusMethodNotAllowed:
		e.Code, e.Details = errcode.NotFound, "method not allowed on this path"
	case http.StatusUnauthorized:
		e.Code, e.Details = errcode.AccessDenied, msg
	case http.StatusForbidden:
		e.Code, e.Details = errcode.AccessDenied, msg
	case http.StatusRequestEntityTooLarge:
		e.Code, e.Details = errcode.InvalidRequest, "the request body is too large"
	case http.StatusTooManyRequests:
		e.Code = errcode.TooManyRequests
	case http.StatusServiceUnavailable:
		e.Code = errcode.NotReady
	default:
		if he.Code >= 400 && he.Code < 500 {
			e.Code, e.Details = errcode.InvalidRequest, msg
		} else {
			e.Status, e.Code = http.StatusInternalServerError, errcode.Internal
			if e.cause == nil {
				e.cause = he
			}
		}
	}
	e.Title = e.Code.Title()
	return e
}

// fromStatus renders a coreapp gRPC status. The HTTP status comes from the
// gRPC code; code, title and details come from the corev1.Error detail when
// present. Without one, the status message is passed on as details for
// client errors (4xx) only: a 5xx message may describe internals. The
// "try another node" codes 1017 and 1018 (still failing after every attempt)
// are 503 whatever the gRPC code: the client should retry.
func fromStatus(st *status.Status, err error) *Error {
	m, ok := grpcHTTP[st.Code()]
	if !ok {
		m.status, m.code = http.StatusInternalServerError, errcode.Internal
	}
	e := &Error{Status: m.status, Code: m.code, cause: err}
	if ce := errorDetail(st); ce != nil {
		e.Code = errcode.Code(ce.GetCode())
		e.Title = ce.GetTitle()
		e.Details = ce.GetDetails()
		if e.Title == "" {
			e.Title = e.Code.Title()
		}
		if hs := int(ce.GetHttpStatus()); hs >= 400 && hs <= 599 {
			e.Status = hs
		}
		if e.Code == errcode.NotPrimaryMaster || e.Code == errcode.NotPrimaryCoreapp {
			e.Status = http.StatusServiceUnavailable
		}
		return e
	}
	e.Title = e.Code.Title()
	switch {
	case m.status < 500:
		e.Details = st.Message()
	case st.Code() == codes.Unavailable:
		e.Details = "Coreapp unreachable, retry later"
	case st.Code() == codes.DeadlineExceeded:
		e.Details = "Coreapp did not answer in time"
	}
	return e
}

type errorBody struct {
	Meta   meta        `json:"meta"`
	Errors []errorItem `json:"errors"`
}

// d360ErrorBody is errorBody with 360dialog's meta fields (invalidD360Key).
type d360ErrorBody struct {
	Meta struct {
		meta
		HTTPCode         int    `json:"httpCode"`
		DeveloperMessage string `json:"developerMessage"`
		Success          bool   `json:"success"`
	} `json:"meta"`
	Errors []errorItem `json:"errors"`
}

type errorItem struct {
	Code    errcode.Code `json:"code"`
	Title   string       `json:"title"`
	Details string       `json:"details,omitempty"`
}

// handleError is the server's one echo.HTTPErrorHandler.
func (s *Server) handleError(err error, c echo.Context) {
	e := toError(err)
	level := slog.LevelDebug
	switch {
	case e.Status >= 500:
		level = slog.LevelError
	case e.Status == http.StatusUnauthorized || e.Status == http.StatusForbidden:
		level = slog.LevelInfo
	}
	if errors.Is(err, context.Canceled) && c.Request().Context().Err() != nil {
		level = slog.LevelDebug // the client went away
	}
	attrs := []any{"request_id", requestID(c), "method", c.Request().Method, "path", c.Request().URL.Path,
		"status", e.Status, "code", e.Code, "details", e.Details}
	if e.cause != nil {
		attrs = append(attrs, "err", e.cause)
	}
	s.log.Log(c.Request().Context(), level, "request failed", attrs...)

	if c.Response().Committed {
		return
	}
	if e.RetryAfter > 0 {
		c.Response().Header().Set("Retry-After", strconv.Itoa(int((e.RetryAfter+time.Second-1)/time.Second)))
	}
	if isGraph(c) {
		if err := s.graphError(c, e); err != nil {
			s.log.Warn("write error response", "request_id", requestID(c), "err", err)
		}
		return
	}
	var body any = errorBody{Meta: s.meta, Errors: []errorItem{{Code: e.Code, Title: e.Title, Details: e.Details}}}
	if e.d360 {
		b := d360ErrorBody{Errors: []errorItem{{Code: e.Code, Title: e.Title, Details: e.Details}}}
		b.Meta.meta, b.Meta.HTTPCode, b.Meta.DeveloperMessage = s.meta, e.Status, e.Details
		body = b
	}
	if c.Request().Method == http.MethodHead {
		err = c.NoContent(e.Status)
	} else {
		err = c.JSON(e.Status, body)
	}
	if err != nil {
		s.log.Warn("write error response", "request_id", requestID(c), "err", err)
	}
}
