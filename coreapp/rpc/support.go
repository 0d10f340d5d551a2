package rpc

import (
	"context"
	"database/sql"
	"runtime"
	"runtime/debug"
	"time"

	"github.com/openwaba/openwaba/db"
	corev1 "github.com/openwaba/openwaba/proto/gen/core/v1"
)

// WithSupport lets the server answer GetSupport: d is the coreapp
// database, started when this node started.
func (s *Server) WithSupport(d *sql.DB, started time.Time) *Server {
	s.db, s.started = d, started
	return s
}

// GetSupport implements core.v1.Core. The webapp adds its own part and
// the masked settings (GET /v1/support); nothing here is secret.
func (s *Server) GetSupport(ctx context.Context, _ *corev1.GetSupportRequest) (*corev1.GetSupportResponse, error) {
	out := &corev1.GetSupportResponse{GoVersion: runtime.Version(), Revision: revision(), StartedAt: s.started.UnixMilli(), DbEngine: db.EngineMySQL}
	if s.db != nil {
		if db.IsSQLite(s.db) {
			out.DbEngine = db.EngineSQLite
		}
		applied, known, err := db.SchemaVersion(ctx, s.db, db.Core)
		if err != nil {
			return nil, s.translate(ctx, "support", err)
		}
		out.SchemaVersion, out.SchemaKnown = applied, known
	}
	v := s.cluster.View()
	out.Node = v.Self
	for _, n := range v.Nodes {
		out.Nodes = append(out.Nodes, &corev1.SupportNode{Id: n.ID, Hostname: n.Hostname, Addr: n.Addr, StartedAt: n.StartedAt,
			Alive: n.Alive, ChatOk: n.ChatOK, Master: n.ID == v.Master})
	}
	accts, err := s.accounts.Verified(ctx)
	if err != nil {
		return nil, s.translate(ctx, "support", err)
	}
	for _, a := range accts {
		out.Accounts = append(out.Accounts, &corev1.SupportAccount{WaId: a.WaID, State: a.State, Shards: uint32(a.Shards)})
	}
	return out, nil
}

// revision is the VCS revision the binary was built from, "+dirty" when
// the tree had changes.
func revision() string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return ""
	}
	var rev, dirty string
	for _, kv := range bi.Settings {
		switch {
		case kv.Key == "vcs.revision":
			rev = kv.Value
		case kv.Key == "vcs.modified" && kv.Value == "true":
			dirty = "+dirty"
		}
	}
	if rev == "" {
		return ""
	}
	return rev + dirty
}
