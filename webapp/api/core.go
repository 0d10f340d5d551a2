package api

import (
	"context"
	"time"

	"github.com/labstack/echo/v4"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/openwaba/openwaba/api/errcode"
	corev1 "github.com/openwaba/openwaba/proto/gen/core/v1"
	"github.com/openwaba/openwaba/webapp/coreconn"
)

// call invokes one coreapp method under the given deadline, with the core
// token and the request id as metadata, trying again (on another coreapp
// when there is one) while it fails in a way that means "try another node"
// (see retryable). Every method is safe to repeat; SendMessage is idempotent
// by request_id.
func call[Req, Resp any](s *Server, c echo.Context, timeout time.Duration,
	method func(context.Context, Req, ...grpc.CallOption) (Resp, error), req Req) (Resp, error) {
	ctx, cancel := s.coreContext(c, timeout)
	defer cancel()
	return retry(s, c, ctx, func(ctx context.Context) (Resp, error) { return method(ctx, req) })
}

// coreContext is the context of a coreapp call made for request c: the
// request's context with the deadline and the metadata every call carries
// (the core token and the request id).
func (s *Server) coreContext(c echo.Context, timeout time.Duration) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithTimeout(c.Request().Context(), timeout)
	ctx = metadata.AppendToOutgoingContext(ctx,
		"authorization", "Bearer "+s.opts.CoreToken,
		"x-request-id", requestID(c))
	return ctx, cancel
}

// retry runs op until it succeeds, fails in a way that is not retryable,
// has been tried s.opts.Attempts times or ctx is done, pausing between
// attempts (s.opts.RetryBackoff, doubling). Every attempt gets the same
// context (so the same metadata), marked with coreconn.WithAttempts: each
// attempt goes to a coreapp the earlier ones did not use, while there is one.
func retry[T any](s *Server, c echo.Context, ctx context.Context, op func(context.Context) (T, error)) (T, error) {
	ctx = coreconn.WithAttempts(ctx)
	pause := s.opts.RetryBackoff
	for attempt := 1; ; attempt++ {
		v, err := op(ctx)
		if err == nil || !retryable(err) || attempt >= s.opts.Attempts {
			return v, err
		}
		s.log.Debug("coreapp call failed, trying again", "request_id", requestID(c), "path", c.Request().URL.Path,
			"attempt", attempt, "coreapps", coreconn.Attempted(ctx), "err", err)
		t := time.NewTimer(pause)
		select {
		case <-ctx.Done():
			t.Stop()
			return v, err
		case <-t.C:
		}
		pause *= 2
	}
}

// retryable reports whether a coreapp call that failed with err should be
// tried again, on another coreapp: gRPC Unavailable (no connection, refused,
// a node shutting down), or an Error detail with code 1017 Not Primary
// Master or 1018 Not Primary Coreapp, whatever the gRPC code.
func retryable(err error) bool {
	st, ok := status.FromError(err)
	if !ok {
		return false
	}
	if st.Code() == codes.Unavailable {
		return true
	}
	switch errcode.Code(errorDetail(st).GetCode()) {
	case errcode.NotPrimaryMaster, errcode.NotPrimaryCoreapp:
		return true
	}
	return false
}

// errorDetail returns the status's corev1.Error detail with a code, or nil.
func errorDetail(st *status.Status) *corev1.Error {
	for _, d := range st.Details() {
		if ce, ok := d.(*corev1.Error); ok && ce.GetCode() != 0 {
			return ce
		}
	}
	return nil
}
