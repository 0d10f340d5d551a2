package api

import (
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/openwaba/openwaba/webapp/ratelimit"
)

// groupOf is the rate limit group of a route pattern: the message sends
// (on-prem's POST /v1/messages, the Cloud and 360dialog messages routes) or
// the rest.
func groupOf(path string) string {
	if path == "/v1/messages" || strings.HasSuffix(path, "/messages") {
		return ratelimit.GroupMessages
	}
	return ratelimit.GroupDefault
}

// callerOf names a principal for the limits: a number's key, a user, or
// the monitoring key.
func callerOf(p principal) string {
	switch p.kind {
	case kindAPIKey:
		return "number:" + p.waID
	case kindUser:
		return "user:" + p.username
	}
	return "monitor"
}

// rateLimit answers 429 (1015, or Graph's 130429 on the Cloud routes) with
// Retry-After when the caller's bucket of group is empty.
func (s *Server) rateLimit(group string) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			if s.opts.Limits == nil {
				return next(c)
			}
			if ok, wait := s.opts.Limits.Allow(group, callerOf(principalOf(c)), s.opts.Now()); !ok {
				return tooManyRequests(wait, "request rate limit reached ("+group+" requests); retry after the time in Retry-After")
			}
			return next(c)
		}
	}
}
