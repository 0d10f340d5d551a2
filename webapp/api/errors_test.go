package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/labstack/echo/v4"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	corev1 "github.com/openwaba/openwaba/proto/gen/core/v1"
)

func statusWith(c codes.Code, msg string, detail *corev1.Error) error {
	st, err := status.New(c, msg).WithDetails(detail)
	if err != nil {
		panic(err)
	}
	return st.Err()
}

func TestHandleError(t *testing.T) {
	s := New(nil, nil, slog.New(slog.DiscardHandler), Options{})
	tests := []struct {
		name       string
		err        error
		wantStatus int
		want       errorItem
	}{
		// Our own errors.
		{"api error", invalid("to must be 5 to 20 digits"), 400, errorItem{1009, "Parameter value is not valid", "to must be 5 to 20 digits"}},
		{"wrapped api error", fmt.Errorf("handler: %w", missing("x is required")), 400, errorItem{1008, "Required parameter is missing", "x is required"}},
		{"internal error hides its cause", internal(errors.New("dial mysql: password=hunter2")), 500, errorItem{1014, "Internal error", ""}},
		{"plain error", errors.New("something broke"), 500, errorItem{1014, "Internal error", ""}},
		{"body too large", &http.MaxBytesError{Limit: 1 << 20}, 413, errorItem{1025, "Invalid Request", "the request body is larger than 1048576 bytes"}},
		{"context deadline", context.DeadlineExceeded, 504, errorItem{1014, "Internal error", "the request timed out"}},

		// echo's errors.
		{"echo not found", echo.ErrNotFound, 404, errorItem{1006, "Resource not found", "unknown path"}},
		{"echo method not allowed", echo.ErrMethodNotAllowed, 405, errorItem{1006, "Resource not found", "method not allowed on this path"}},
		{"echo unauthorized", echo.NewHTTPError(401, "who are you"), 401, errorItem{1005, "Access denied", "who are you"}},
		{"echo forbidden", echo.NewHTTPError(403, "no"), 403, errorItem{1005, "Access denied", "no"}},
		{"echo too large", echo.ErrStatusRequestEntityTooLarge, 413, errorItem{1025, "Invalid Request", "the request body is too large"}},
		{"echo bad request", echo.NewHTTPError(400, "bad"), 400, errorItem{1025, "Invalid Request", "bad"}},
		{"echo internal", echo.NewHTTPError(500, "boom").SetInternal(errors.New("secret")), 500, errorItem{1014, "Internal error", ""}},

		// gRPC statuses without a corev1.Error detail.
		{"InvalidArgument", status.Error(codes.InvalidArgument, "to is not valid"), 400, errorItem{1009, "Parameter value is not valid", "to is not valid"}},
		{"NotFound", status.Error(codes.NotFound, "message not found"), 404, errorItem{1006, "Resource not found", "message not found"}},
		{"PermissionDenied", status.Error(codes.PermissionDenied, "bad core token"), 403, errorItem{1005, "Access denied", "bad core token"}},
		{"Unauthenticated", status.Error(codes.Unauthenticated, "no token"), 401, errorItem{1005, "Access denied", "no token"}},
		{"FailedPrecondition", status.Error(codes.FailedPrecondition, "not registered"), 400, errorItem{1011, "Service not ready", "not registered"}},
		{"AlreadyExists", status.Error(codes.AlreadyExists, "exists"), 409, errorItem{1004, "Resource already exists", "exists"}},
		{"ResourceExhausted", status.Error(codes.ResourceExhausted, "slow down"), 429, errorItem{1015, "Too many requests", "slow down"}},
		{"Unavailable hides the transport error", status.Error(codes.Unavailable, "dial tcp 10.0.0.7:6250: connection refused"), 503, errorItem{1014, "Internal error", "Coreapp unreachable, retry later"}},
		{"DeadlineExceeded", status.Error(codes.DeadlineExceeded, "deadline"), 504, errorItem{1014, "Internal error", "Coreapp did not answer in time"}},
		{"Internal hides its message", status.Error(codes.Internal, "sql: table messages is corrupt"), 500, errorItem{1014, "Internal error", ""}},
		{"Unknown", status.Error(codes.Unknown, "panic in coreapp"), 500, errorItem{1014, "Internal error", ""}},
		{"DataLoss", status.Error(codes.DataLoss, "oops"), 500, errorItem{1014, "Internal error", ""}},
		{"wrapped status", fmt.Errorf("call: %w", status.Error(codes.NotFound, "nope")), 404, errorItem{1006, "Resource not found", "nope"}},

		// gRPC statuses with a corev1.Error detail.
		{"detail on InvalidArgument", statusWith(codes.InvalidArgument, "x", &corev1.Error{Code: 1013, Title: "User is not valid", Details: "not a user"}), 400, errorItem{1013, "User is not valid", "not a user"}},
		{"detail without title", statusWith(codes.NotFound, "x", &corev1.Error{Code: 1006, Details: "template missing"}), 404, errorItem{1006, "Resource not found", "template missing"}},
		{"detail with an unknown code and no title", statusWith(codes.InvalidArgument, "x", &corev1.Error{Code: 2999}), 400, errorItem{2999, "Generic error", ""}},
		{"detail on Unavailable", statusWith(codes.Unavailable, "x", &corev1.Error{Code: 1011, Title: "Service not ready", Details: "slot moving"}), 503, errorItem{1011, "Service not ready", "slot moving"}},
		{"detail on Internal is shown as given", statusWith(codes.Internal, "x", &corev1.Error{Code: 1023, Details: "database error"}), 500, errorItem{1023, "Database error occurred", "database error"}},
		{"detail on ResourceExhausted", statusWith(codes.ResourceExhausted, "x", &corev1.Error{Code: 1016, Title: "System overloaded"}), 429, errorItem{1016, "System overloaded", ""}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := httptest.NewRecorder()
			c := s.e.NewContext(httptest.NewRequest(http.MethodGet, "/v1/x", nil), rec)
			s.handleError(tt.err, c)
			if rec.Code != tt.wantStatus {
				t.Errorf("status = %d, want %d", rec.Code, tt.wantStatus)
			}
			var got errorBody
			if err := json.Unmarshal(rec.Body.Bytes(), &got); err != nil {
				t.Fatalf("body %q: %v", rec.Body, err)
			}
			want := errorBody{Meta: meta{APIStatus: "stable", Version: Version}, Errors: []errorItem{tt.want}}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("envelope mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestHandleErrorLeavesCommittedResponses(t *testing.T) {
	s := New(nil, nil, slog.New(slog.DiscardHandler), Options{})
	rec := httptest.NewRecorder()
	c := s.e.NewContext(httptest.NewRequest(http.MethodGet, "/v1/x", nil), rec)
	if err := c.String(http.StatusOK, "partial"); err != nil {
		t.Fatal(err)
	}
	s.handleError(errors.New("late failure"), c)
	if rec.Code != http.StatusOK || rec.Body.String() != "partial" {
		t.Errorf("committed response changed: %d %q", rec.Code, rec.Body)
	}
}
