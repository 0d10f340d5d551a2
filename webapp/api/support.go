package api

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"net/url"
	"runtime"
	"slices"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	corev1 "github.com/openwaba/openwaba/proto/gen/core/v1"
)

type supportResponse struct {
	Support supportInfo `json:"support"`
	Meta    meta        `json:"meta"`
}

// supportInfo is GET /v1/support: on-prem's {"support":{"debug_info"}}
// (the text WADebug saves as support-info.log) and the same facts as
// fields. Nothing in it is secret: webhook header values and the query and
// user of the webhook URL are masked, and the digest is of the masked
// settings, so two deployments can be compared without sharing secrets.
type supportInfo struct {
	DebugInfo      string          `json:"debug_info"`
	Webapp         supportBuild    `json:"webapp"`
	Coreapp        supportCoreapp  `json:"coreapp"`
	Nodes          []supportNode   `json:"nodes"`
	Numbers        []supportNumber `json:"numbers"`
	SettingsDigest string          `json:"settings_digest"`
	Settings       json.RawMessage `json:"settings"`
}

type supportBuild struct {
	Version   string `json:"version"`
	GoVersion string `json:"go_version"`
}

type supportCoreapp struct {
	Node          string `json:"node"`
	GoVersion     string `json:"go_version"`
	Revision      string `json:"revision,omitempty"`
	DBEngine      string `json:"db_engine"`
	SchemaVersion int64  `json:"schema_version"`
	SchemaCurrent bool   `json:"schema_current"`
	StartedAt     string `json:"started_at"`
}

type supportNode struct {
	Node      string `json:"node"` // "<hostname>:<id>", as in GET /v1/health
	Addr      string `json:"addr"`
	StartedAt string `json:"started_at"`
	Alive     bool   `json:"alive"`
	ChatOK    bool   `json:"chat_connected"`
	Master    bool   `json:"primary_master"`
}

type supportNumber struct {
	WaID   string `json:"wa_id"`
	State  string `json:"state"`
	Shards uint32 `json:"shards"`
}

// support: GET /v1/support (admin).
func (s *Server) support(c echo.Context) error {
	core, err := call(s, c, s.opts.CallTimeout, s.core.GetSupport, &corev1.GetSupportRequest{})
	if err != nil {
		return err
	}
	set, err := call(s, c, s.opts.CallTimeout, s.core.GetSettings, &corev1.GetSettingsRequest{Account: principalOf(c).account()})
	if err != nil {
		return err
	}
	app, err := maskSettings(set.GetJson())
	if err != nil {
		return internal(err)
	}
	sum := sha256.Sum256(app)
	ms := func(t int64) string { return time.UnixMilli(t).UTC().Format(time.RFC3339) }
	info := supportInfo{
		Webapp: supportBuild{Version: s.meta.Version, GoVersion: runtime.Version()},
		Coreapp: supportCoreapp{Node: core.GetNode(), GoVersion: core.GetGoVersion(), Revision: core.GetRevision(), DBEngine: core.GetDbEngine(),
			SchemaVersion: core.GetSchemaVersion(), SchemaCurrent: core.GetSchemaVersion() == core.GetSchemaKnown(), StartedAt: ms(core.GetStartedAt())},
		Nodes: []supportNode{}, Numbers: []supportNumber{},
		SettingsDigest: "sha256:" + hex.EncodeToString(sum[:]), Settings: app,
	}
	for _, n := range core.GetNodes() {
		info.Nodes = append(info.Nodes, supportNode{Node: n.GetHostname() + ":" + n.GetId(), Addr: n.GetAddr(), StartedAt: ms(n.GetStartedAt()),
			Alive: n.GetAlive(), ChatOK: n.GetChatOk(), Master: n.GetMaster()})
	}
	for _, a := range core.GetAccounts() {
		info.Numbers = append(info.Numbers, supportNumber{WaID: a.GetWaId(), State: a.GetState(), Shards: a.GetShards()})
	}
	info.DebugInfo = info.text()
	return c.JSON(http.StatusOK, supportResponse{Support: info, Meta: s.meta})
}

// text is the report as lines of "key: value".
func (i supportInfo) text() string {
	var b strings.Builder
	fmt.Fprintf(&b, "webapp: %s (%s)\n", i.Webapp.Version, i.Webapp.GoVersion)
	c := i.Coreapp
	fmt.Fprintf(&b, "coreapp: node %s (%s) revision %q, started %s\n", c.Node, c.GoVersion, c.Revision, c.StartedAt)
	fmt.Fprintf(&b, "database: %s, schema %d (current: %v)\n", c.DBEngine, c.SchemaVersion, c.SchemaCurrent)
	for _, n := range i.Nodes {
		fmt.Fprintf(&b, "node %s at %s: alive %v, chat connected %v, primary master %v, started %s\n", n.Node, n.Addr, n.Alive, n.ChatOK, n.Master, n.StartedAt)
	}
	for _, n := range i.Numbers {
		fmt.Fprintf(&b, "number %s: %s, %d shard(s)\n", n.WaID, n.State, n.Shards)
	}
	fmt.Fprintf(&b, "settings: %s\n", i.SettingsDigest)
	return b.String()
}

// maskSettings returns coreapp's settings JSON with the webhook's secrets
// masked: header values, and the URL's user and query.
func maskSettings(b []byte) (json.RawMessage, error) {
	var m map[string]any
	if len(b) > 0 {
		if err := json.Unmarshal(b, &m); err != nil {
			return nil, fmt.Errorf("coreapp returned settings that are not a JSON object: %w", err)
		}
	}
	if m == nil {
		m = map[string]any{}
	}
	if wh, ok := m["webhooks"].(map[string]any); ok {
		if hs, ok := wh["headers"].(map[string]any); ok {
			for k := range hs {
				hs[k] = masked
			}
		}
		if raw, ok := wh["url"].(string); ok && raw != "" {
			wh["url"] = maskURL(raw)
		}
	}
	return json.Marshal(m) // keys sorted: the digest is stable
}

func maskURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return masked
	}
	if u.User != nil {
		u.User = url.User(masked)
	}
	if u.RawQuery != "" {
		q := u.Query()
		keys := slices.Sorted(maps.Keys(q))
		parts := make([]string, len(keys))
		for i, k := range keys {
			parts[i] = url.QueryEscape(k) + "=" + masked
		}
		u.RawQuery = strings.Join(parts, "&")
	}
	return u.String()
}
