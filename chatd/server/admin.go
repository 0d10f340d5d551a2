package server

import (
	"database/sql"
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/openwaba/openwaba/api/phone"
	"github.com/openwaba/openwaba/api/template"
	"github.com/openwaba/openwaba/chatd/wire"
)

// adminHandler serves the sandbox admin API. It must only listen on a
// loopback address: it hands out verification codes.
//
//	GET /sandbox/codes/{number} → {"code":"123456"} | 404 {"error":…}
//	GET /sandbox/root-key       → {"root_key":"<base64>"}: the key clients pin
//	GET /healthz                → 200 ok
//	POST /sandbox/templates/{id}/status {"status":"APPROVED"|"REJECTED"|"PAUSED"|"DISABLED","reason":…}
//	                            → the template's id, name, language, category, status, reason
//	GET /sandbox/clock          → {"offset":"25h0m0s","offset_seconds":90000,"now":<unix>}
//	POST /sandbox/clock {"advance":"25h"} → the same, moved forward
//	DELETE /sandbox/clock       → the same, reset to real time
func (s *Server) adminHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		if err := s.db.PingContext(r.Context()); err != nil {
			http.Error(w, "database unreachable", http.StatusServiceUnavailable)
			return
		}
		w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("GET /sandbox/root-key", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"root_key": wire.EncodeRootKey(s.keys.Load().RootPublic())})
	})
	mux.HandleFunc("GET /sandbox/codes/{number}", func(w http.ResponseWriter, r *http.Request) {
		number := r.PathValue("number")
		if !phone.Valid(number) {
			writeJSON(w, http.StatusBadRequest, map[string]string{"error": "number must be 5 to 20 digits"})
			return
		}
		var code string
		err := s.db.QueryRowContext(r.Context(), "SELECT code FROM registrations WHERE number = ? AND expires_at > ?", number, time.Now().UnixMilli()).Scan(&code)
		if errors.Is(err, sql.ErrNoRows) {
			writeJSON(w, http.StatusNotFound, map[string]string{"error": "no pending registration for this number"})
			return
		}
		if err != nil {
			s.log.Error("admin: code lookup failed", "err", err)
			writeJSON(w, http.StatusInternalServerError, map[string]string{"error": "internal error"})
			return
		}
		writeJSON(w, http.StatusOK, map[string]string{"code": code})
	})
	mux.HandleFunc("POST /sandbox/templates/{id}/status", s.adminTemplateStatus)
	mux.Handle("GET /metrics", metricsHandler)
	mux.HandleFunc("GET /sandbox/clock", s.adminClock)
	mux.HandleFunc("POST /sandbox/clock", s.adminClock)
	mux.HandleFunc("DELETE /sandbox/clock", s.adminClock)
	return mux
}

// maxAdminBody bounds the body of an admin request.
const maxAdminBody = 16 << 10

// decodeAdmin reads a JSON body strictly; it answers 400 and returns false
// when it cannot.
func decodeAdmin(w http.ResponseWriter, r *http.Request, v any) bool {
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxAdminBody))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "bad JSON body: " + err.Error()})
		return false
	}
	return true
}

// The statuses the admin may set (a review outcome, or what Meta does to
// an approved template later).
var adminStatuses = []string{template.StatusApproved, template.StatusRejected, template.StatusPaused, template.StatusDisabled}

func (s *Server) adminTemplateStatus(w http.ResponseWriter, r *http.Request) {
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil || id <= 0 {
		writeJSON(w, http.StatusNotFound, map[string]string{"error": "no template with this id"})
		return
	}
	var req struct {
		Status string `json:"status"`
		Reason string `json:"reason"`
	}
	if !decodeAdmin(w, r, &req) {
		return
	}
	req.Status = strings.ToUpper(req.Status)
	if !slices.Contains(adminStatuses, req.Status) {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "status must be APPROVED, REJECTED, PAUSED or DISABLED"})
		return
	}
	if len(req.Reason) > 256 {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "reason is at most 256 characters"})
		return
	}
	if req.Reason == "" {
		req.Reason = "NONE"
	}
	row, changed, err := s.setTemplateStatus(r.Context(), id, req.Status, req.Reason, false)
	if errors.Is(err, errNoTemplate) {
		writeJSON(w, http.StatusNotFound, map[string]string{"error": "no template with this id"})
		return
	}
	if err != nil {
		s.log.Error("admin: template status change failed", "err", err)
		writeJSON(w, http.StatusInternalServerError, map[string]string{"error": "internal error"})
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"id": strconv.FormatInt(row.id, 10), "account": row.account, "name": row.name,
		"language": row.language, "category": row.category, "status": row.status, "reason": row.reason, "changed": changed})
}

// maxClockAdvance bounds one move of the sandbox clock.
const maxClockAdvance = 10 * 365 * 24 * time.Hour

func (s *Server) adminClock(w http.ResponseWriter, r *http.Request) {
	switch r.Method {
	case http.MethodPost:
		var req struct {
			Advance string `json:"advance"`
		}
		if !decodeAdmin(w, r, &req) {
			return
		}
		d, err := time.ParseDuration(req.Advance)
		if err != nil || d <= 0 || d > maxClockAdvance {
			writeJSON(w, http.StatusBadRequest, map[string]string{"error": `advance must be a positive duration such as "25h" (at most ten years)`})
			return
		}
		off, err := s.advanceClock(r.Context(), int64(d/time.Second), false)
		if err != nil {
			s.log.Error("admin: moving the clock failed", "err", err)
			writeJSON(w, http.StatusInternalServerError, map[string]string{"error": "internal error"})
			return
		}
		s.log.Info("sandbox clock moved forward", "advance", d.String(), "offset", (time.Duration(off) * time.Second).String())
	case http.MethodDelete:
		if _, err := s.advanceClock(r.Context(), 0, true); err != nil {
			s.log.Error("admin: resetting the clock failed", "err", err)
			writeJSON(w, http.StatusInternalServerError, map[string]string{"error": "internal error"})
			return
		}
		s.log.Info("sandbox clock reset to real time")
	}
	off := s.clock.offset.Load()
	writeJSON(w, http.StatusOK, map[string]any{"offset": (time.Duration(off) * time.Second).String(), "offset_seconds": off, "now": s.clock.now().Unix()})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}
