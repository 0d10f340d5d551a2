package server

import (
	"database/sql"
	"encoding/json"
	"errors"
	"net/http"
	"time"

	"github.com/openwaba/openwaba/api/phone"
	"github.com/openwaba/openwaba/chatd/wire"
)

// adminHandler serves the sandbox admin API. It must only listen on a
// loopback address: it hands out verification codes.
//
//	GET /sandbox/codes/{number} → {"code":"123456"} | 404 {"error":…}
//	GET /sandbox/root-key       → {"root_key":"<base64>"}: the key clients pin
//	GET /healthz                → 200 ok
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
	return mux
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}
