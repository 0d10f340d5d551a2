package api

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/labstack/echo/v4/middleware"

	"github.com/openwaba/openwaba/api/errcode"
	"github.com/openwaba/openwaba/api/profile"
	corev1 "github.com/openwaba/openwaba/proto/gen/core/v1"
	"github.com/openwaba/openwaba/webapp/auth"
	"github.com/openwaba/openwaba/webapp/ratelimit"
	"github.com/openwaba/openwaba/webapp/webtls"
)

// Version is the meta.version of every response.
const Version = "v2.53.0-openwaba"

// MaxBody is the largest request body accepted.
const MaxBody = 1 << 20

// MaxHeaderBytes is the largest request header block accepted (names,
// values and the request line, as net/http counts them); a larger one gets
// 431 with the on-prem envelope. The http.Server must read more than this
// (webapp reads up to 1 MiB) for the envelope to be ours.
const MaxHeaderBytes = 64 << 10

// PublicReadTimeout is Options.PublicReadTimeout when not set.
const PublicReadTimeout = 10 * time.Second

// DefaultAttempts is Options.Attempts when not set.
const DefaultAttempts = 5

// Options tune a Server. Zero values take the defaults.
type Options struct {
	// MonitoringKey is WA_API_KEY: "Authorization: Apikey <key>" is accepted on
	// the monitoring routes when it is set.
	MonitoringKey string
	// CoreToken is presented to coreapp as "authorization: Bearer <token>".
	CoreToken string
	// CallTimeout bounds a coreapp call (10 s); SendTimeout bounds SendMessage (30 s).
	CallTimeout, SendTimeout time.Duration
	// MediaTimeout bounds a whole media upload or download (5 min): the
	// coreapp stream, and reading the request and writing the response,
	// which it allows beyond the http.Server's ReadTimeout and WriteTimeout.
	MediaTimeout time.Duration
	// Attempts is how many times a call is tried in all while it fails with
	// Unavailable or the error codes 1017/1018 (5: with 3 coreapps every
	// node is tried, and two more tries ride out a failover); RetryBackoff is
	// the first pause between attempts (100 ms, doubling: 1.5 s of pauses
	// for 5 attempts). The call's deadline covers every attempt.
	Attempts     int
	RetryBackoff time.Duration
	// Now is the clock (time.Now).
	Now func() time.Time
	// PublicReadTimeout bounds reading the body of a request to an
	// unauthenticated route (the login): a slow client cannot hold a
	// connection there for the server's whole ReadTimeout (10 s).
	PublicReadTimeout time.Duration
	// MediaURLKey signs the Cloud API's media URLs (every webapp of a
	// deployment needs the same: webapp keeps it in cluster_secrets); a
	// random key of this process when empty.
	MediaURLKey []byte
	// Certificates keeps the HTTPS certificate and the webhook CA bundle
	// (/v1/certificates); nil: those routes answer 404.
	Certificates *webtls.Holder
	// Limits limits the requests of each caller (nil: no limits).
	Limits *ratelimit.Limiter
}

// Server is the REST API. Build it with New and serve Handler().
type Server struct {
	core  corev1.CoreClient
	auth  *auth.Store
	log   *slog.Logger
	opts  Options
	meta  meta
	monit [32]byte // SHA-256 of the monitoring key, compared in constant time
	// mediaKey signs Cloud media URLs (Options.MediaURLKey).
	mediaKey []byte
	// onprem routes the on-prem paths only: what a path that is not a
	// Cloud route would have been answered without the Cloud routes (404
	// or 405), see graphRoute.
	onprem *echo.Echo
	e      *echo.Echo
}

type meta struct {
	APIStatus string `json:"api_status"`
	Version   string `json:"version"`
}

// New returns a Server that forwards to core and authenticates with store.
func New(core corev1.CoreClient, store *auth.Store, log *slog.Logger, opts Options) *Server {
	if opts.CallTimeout <= 0 {
		opts.CallTimeout = 10 * time.Second
	}
	if opts.SendTimeout <= 0 {
		opts.SendTimeout = 30 * time.Second
	}
	if opts.MediaTimeout <= 0 {
		opts.MediaTimeout = 5 * time.Minute
	}
	if opts.Attempts <= 0 {
		opts.Attempts = DefaultAttempts
	}
	if opts.RetryBackoff <= 0 {
		opts.RetryBackoff = 100 * time.Millisecond
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.PublicReadTimeout <= 0 {
		opts.PublicReadTimeout = PublicReadTimeout
	}
	s := &Server{
		core: core,
		auth: store,
		log:  log,
		opts: opts,
		meta: meta{APIStatus: "stable", Version: Version},
	}
	if opts.MonitoringKey != "" {
		s.monit = sha256.Sum256([]byte(opts.MonitoringKey))
	}
	s.mediaKey = opts.MediaURLKey
	if len(s.mediaKey) == 0 {
		s.mediaKey = newMediaKey(log)
	}
	s.e = s.newEcho()
	return s
}

// Handler returns the HTTP handler (the echo instance).
func (s *Server) Handler() http.Handler { return s.e }

func (s *Server) newEcho() *echo.Echo {
	e := echo.New()
	e.HideBanner = true
	e.HidePort = true
	e.IPExtractor = echo.ExtractIPDirect()
	e.HTTPErrorHandler = s.handleError
	// Every route also answers with a trailing slash, as on-prem's do
	// (Meta's own request collection posts media messages to /v1/messages/):
	// the path is rewritten before routing, not redirected.
	e.Pre(middleware.RemoveTrailingSlash())
	e.Use(
		s.headerLimit,
		s.securityHeaders,
		s.requestID,
		s.accessLog,
		middleware.RecoverWithConfig(middleware.RecoverConfig{
			LogErrorFunc: func(c echo.Context, err error, stack []byte) error {
				s.log.Error("panic in handler", "request_id", requestID(c), "path", c.Request().URL.Path, "err", err, "stack", string(stack))
				return internal(fmt.Errorf("panic: %w", err))
			},
		}),
	)

	type route struct {
		method, path string
		access       access
		h            echo.HandlerFunc
	}
	routes := []route{
		{http.MethodPost, "/v1/users/login", public, s.login},
		{http.MethodGet, "/v1/openapi.json", public, s.openAPI},
		{http.MethodPost, "/v1/users/logout", userOnly, s.logout},
		{http.MethodPost, "/v1/users", adminOnly, s.createUser},
		{http.MethodGet, "/v1/users/:username", userOnly, s.getUser},
		{http.MethodPut, "/v1/users/:username", userOnly, s.updateUser},
		{http.MethodDelete, "/v1/users/:username", adminOnly, s.deleteUser},

		{http.MethodPost, "/v1/account", adminOnly, s.registerAccount},
		{http.MethodPost, "/v1/account/verify", adminOnly, s.verifyAccount},
		{http.MethodPost, "/v1/account/shards", adminOnly, s.setShards},
		{http.MethodGet, "/v1/account/shards", adminOnly, s.getShards},
		{http.MethodPost, "/v1/settings/account/two-step", adminOrKey, s.setTwoStep},
		{http.MethodDelete, "/v1/settings/account/two-step", adminOrKey, s.clearTwoStep},
		{http.MethodPost, "/v1/account/api_keys", adminOnly, s.createAPIKey},
		{http.MethodGet, "/v1/account/api_keys", adminOnly, s.listAPIKeys},
		{http.MethodDelete, "/v1/account/api_keys/:prefix", adminOnly, s.deleteAPIKey},

		{http.MethodPost, "/v1/messages", anyPrincipal, s.sendMessage},
		{http.MethodPut, "/v1/messages/:id", anyPrincipal, s.markRead},
		{http.MethodPost, "/v1/contacts", anyPrincipal, s.checkContacts},
		{http.MethodPost, "/v1/contacts/:wa_id/block", anyPrincipal, s.blockContact},
		{http.MethodPost, "/v1/contacts/:wa_id/unblock", anyPrincipal, s.unblockContact},

		{http.MethodGet, "/v1/settings/application", adminOrKey, s.getSettings},
		{http.MethodPatch, "/v1/settings/application", adminOrKey, s.patchSettings},
		{http.MethodDelete, "/v1/settings/application", adminOrKey, s.resetSettings},
		{http.MethodGet, "/v1/settings/business/profile", adminOrKey, s.getBusinessProfile},
		{http.MethodPost, "/v1/settings/business/profile", adminOrKey, s.setBusinessProfile},
		{http.MethodGet, "/v1/settings/profile/about", adminOrKey, s.getAbout},
		{http.MethodPatch, "/v1/settings/profile/about", adminOrKey, s.setAbout},
		{http.MethodGet, "/v1/settings/profile/photo", adminOrKey, s.getPhoto},
		{http.MethodDelete, "/v1/settings/profile/photo", adminOrKey, s.deletePhoto},

		{http.MethodGet, "/v1/configs/webhook", adminOrKey, s.getWebhook},
		{http.MethodPost, "/v1/configs/webhook", adminOrKey, s.setWebhook},
		{http.MethodGet, "/v1/configs/phone_number", anyPrincipal, s.phoneNumber},

		{http.MethodGet, "/v1/webhooks/endpoints", adminOrKey, s.listWebhookEndpoints},
		{http.MethodPost, "/v1/webhooks/endpoints", adminOrKey, s.createWebhookEndpoint},
		{http.MethodGet, "/v1/webhooks/endpoints/:id", adminOrKey, s.getWebhookEndpoint},
		{http.MethodPatch, "/v1/webhooks/endpoints/:id", adminOrKey, s.patchWebhookEndpoint},
		{http.MethodDelete, "/v1/webhooks/endpoints/:id", adminOrKey, s.deleteWebhookEndpoint},
		{http.MethodPost, "/v1/webhooks/endpoints/:id/secret", adminOrKey, s.rotateWebhookSecret},
		{http.MethodDelete, "/v1/webhooks/endpoints/:id/secret", adminOrKey, s.removeWebhookSecret},
		{http.MethodGet, "/v1/webhooks/deliveries", adminOrKey, s.listWebhookDeliveries},
		{http.MethodPost, "/v1/webhooks/deliveries/replay", adminOrKey, s.replayWebhookDeliveries},
		{http.MethodPost, "/v1/webhooks/deliveries/:id/replay", adminOrKey, s.replayWebhookDelivery},

		{http.MethodPost, "/v1/configs/templates", adminOrKey, s.createTemplate},
		{http.MethodGet, "/v1/configs/templates", adminOrKey, s.listTemplates},
		{http.MethodDelete, "/v1/configs/templates/:name", adminOrKey, s.deleteTemplate},

		{http.MethodGet, "/v1/media/:id", anyPrincipal, s.downloadMedia},
		{http.MethodDelete, "/v1/media/:id", anyPrincipal, s.deleteMedia},
		{http.MethodPut, "/v1/services/media/gc", adminOrKey, s.collectMedia},
		{http.MethodPut, "/v1/services/message/gc", adminOrKey, s.collectMessages},
		{http.MethodGet, "/v1/settings/application/media/providers", adminOrKey, s.getMediaProviders},
		{http.MethodPost, "/v1/settings/application/media/providers", adminOrKey, s.setMediaProviders},
		{http.MethodDelete, "/v1/settings/application/media/providers/:name", adminOrKey, s.deleteMediaProvider},

		{http.MethodGet, "/v1/health", monitoring, s.health},
		{http.MethodGet, "/metrics", monitoring, s.metrics},
		{http.MethodGet, "/v1/stats/app", monitoring, s.statsApp},
		{http.MethodGet, "/v1/stats/app/internal", monitoring, s.statsApp},
		{http.MethodGet, "/v1/stats/db", monitoring, s.statsDB},
		{http.MethodGet, "/v1/stats/db/internal", monitoring, s.statsDB},
		{http.MethodGet, "/v1/support", adminOnly, s.support},
		{http.MethodPost, "/v1/settings/backup", adminOnly, s.backup},
		{http.MethodPost, "/v1/certificates/external", adminOnly, s.setExternalCert},
		{http.MethodGet, "/v1/certificates/external/ca", adminOnly, s.externalCA},
		{http.MethodGet, "/v1/certificates/webhooks/ca", adminOnly, s.webhookCA},
		{http.MethodPost, "/v1/certificates/webhooks/ca", adminOnly, s.setWebhookCA},
		{http.MethodDelete, "/v1/certificates/webhooks/ca", adminOnly, s.deleteWebhookCA},
	}
	s.onprem = echo.New()
	for _, r := range routes {
		s.onprem.Add(r.method, r.path, func(echo.Context) error { return echo.ErrNotFound })
	}
	s.onprem.Add(http.MethodPost, "/v1/media", func(echo.Context) error { return echo.ErrNotFound })
	s.onprem.Add(http.MethodPost, "/v1/settings/restore", func(echo.Context) error { return echo.ErrNotFound })
	s.onprem.Add(http.MethodPost, "/v1/settings/profile/photo", func(echo.Context) error { return echo.ErrNotFound })
	for _, r := range routes {
		if r.access == public {
			e.Add(r.method, r.path, r.h, s.shortRead, s.bodyLimit)
			continue
		}
		e.Add(r.method, r.path, r.h, s.bodyLimit, s.authenticate(r.access), s.rateLimit(groupOf(r.path)))
	}
	// POST /v1/media (any principal) streams its body to coreapp and enforces
	// media.MaxUpload itself: it and the Cloud uploads are the routes
	// without bodyLimit.
	e.Add(http.MethodPost, "/v1/media", s.uploadMedia, s.authenticate(anyPrincipal), s.rateLimit(ratelimit.GroupDefault))
	// A restore carries a backup: a limit of its own.
	e.Add(http.MethodPost, "/v1/settings/restore", s.restore, limitBody(MaxRestoreBody), s.authenticate(adminOnly), s.rateLimit(ratelimit.GroupDefault))
	e.Add(http.MethodPost, "/v1/settings/profile/photo", s.setPhoto, limitBody(profile.MaxPhoto), s.authenticate(adminOrKey), s.rateLimit(ratelimit.GroupDefault))

	// The Cloud API (cloud.go): Graph routes, and 360dialog's Cloud flavour
	// without version and number.
	cloud := []route{
		{http.MethodPost, "/:version/:id/messages", anyPrincipal, s.cloudMessages},
		{http.MethodGet, "/:version/:id", anyPrincipal, s.cloudGet},
		{http.MethodPost, "/:version/:id", adminOrKey, s.cloudPost},
		{http.MethodDelete, "/:version/:id", anyPrincipal, s.cloudDelete},
		{http.MethodGet, "/:version/:id/phone_numbers", anyPrincipal, s.cloudPhoneNumbers},
		{http.MethodGet, "/:version/:id/message_templates", adminOrKey, s.cloudListTemplates},
		{http.MethodPost, "/:version/:id/message_templates", adminOrKey, s.cloudCreateTemplate},
		{http.MethodDelete, "/:version/:id/message_templates", adminOrKey, s.cloudDeleteTemplate},
		{http.MethodGet, "/:version/:id/message_templates/:template", adminOrKey, s.cloudWABATemplate},
		{http.MethodGet, "/:version/:id/whatsapp_business_profile", anyPrincipal, s.cloudGetProfile},
		{http.MethodPost, "/:version/:id/whatsapp_business_profile", adminOrKey, s.cloudUpdateProfile},
		{http.MethodPost, "/messages", anyPrincipal, s.cloudMessages},
		{http.MethodGet, "/:id", anyPrincipal, s.cloudGet},
		{http.MethodDelete, "/:id", anyPrincipal, s.cloudDelete},
	}
	for _, r := range cloud {
		e.Add(r.method, r.path, r.h, s.graphRoute, s.bodyLimit, s.authenticate(r.access), s.rateLimit(groupOf(r.path)))
	}
	for _, p := range []string{"/:version/:id/media", "/media"} {
		e.Add(http.MethodPost, p, s.cloudUpload, s.graphRoute, s.authenticate(anyPrincipal), s.rateLimit(ratelimit.GroupDefault))
	}
	e.Add(http.MethodGet, mediaURLPath+":id", s.signedMedia, s.graphRoute)
	e.Add(http.MethodGet, photoLinkPath+":pnid", s.signedPhoto)
	return e
}

// headerLimit refuses a request whose headers are larger than
// MaxHeaderBytes, in the on-prem envelope.
func (s *Server) headerLimit(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		r := c.Request()
		n := len(r.Method) + len(r.RequestURI) + len(r.Proto) + len(r.Host) + 4
		for k, vs := range r.Header {
			for _, v := range vs {
				n += len(k) + len(v) + 4
			}
		}
		if n > MaxHeaderBytes {
			return apiErr(http.StatusRequestHeaderFieldsTooLarge, errcode.InvalidRequest, "the request headers are larger than %d bytes", MaxHeaderBytes)
		}
		return next(c)
	}
}

// securityHeaders are on every response: HSTS (the API is HTTPS only),
// no caching (responses carry tokens, keys and messages), no MIME sniffing.
func (s *Server) securityHeaders(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		h := c.Response().Header()
		h.Set("Strict-Transport-Security", "max-age=31536000")
		h.Set("Cache-Control", "no-store")
		h.Set("X-Content-Type-Options", "nosniff")
		return next(c)
	}
}

// shortRead gives an unauthenticated request Options.PublicReadTimeout to
// send its body.
func (s *Server) shortRead(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		_ = http.NewResponseController(c.Response()).SetReadDeadline(time.Now().Add(s.opts.PublicReadTimeout))
		return next(c)
	}
}

// requestID takes the client's X-Request-Id (1 to 64 printable ASCII
// characters) or makes one, echoes it in the response, and keeps it for the
// coreapp call (metadata x-request-id and SendMessageRequest.request_id, so a
// client that retries with the same id never sends twice).
func (s *Server) requestID(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		id := c.Request().Header.Get(echo.HeaderXRequestID)
		bad := id != "" && !validRequestID(id)
		if id == "" || bad {
			id = rand.Text()
		}
		c.Set(requestIDKey, id)
		c.Response().Header().Set(echo.HeaderXRequestID, id)
		if bad {
			return invalid("the X-Request-Id header must be 1 to 64 printable ASCII characters")
		}
		return next(c)
	}
}

const requestIDKey = "openwaba.request_id"

func validRequestID(id string) bool {
	return len(id) >= 1 && len(id) <= 64 && printableASCII(id)
}

// printableASCII reports whether s has only the characters 0x21 to 0x7e.
func printableASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x21 || s[i] > 0x7e {
			return false
		}
	}
	return true
}

func requestID(c echo.Context) string {
	id, _ := c.Get(requestIDKey).(string)
	return id
}

// accessLog logs every request at debug level after the error handler ran.
func (s *Server) accessLog(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		start := s.opts.Now()
		if err := next(c); err != nil {
			c.Error(err)
		}
		took := s.opts.Now().Sub(start)
		observe(c, took)
		attrs := []any{"request_id", requestID(c), "method", c.Request().Method, "path", c.Request().URL.Path,
			"status", c.Response().Status, "bytes", c.Response().Size, "duration", took, "remote", c.RealIP()}
		if p, ok := c.Get(principalKey).(principal); ok {
			attrs = append(attrs, "principal", p)
		}
		s.log.Debug("request", attrs...)
		return nil
	}
}

// bodyLimit refuses bodies over MaxBody: at once when Content-Length says so,
// otherwise when reading passes the limit (see readBody). Every route but
// POST /v1/media, which streams its body, has it.
func (s *Server) bodyLimit(next echo.HandlerFunc) echo.HandlerFunc { return limitBody(MaxBody)(next) }

// limitBody is bodyLimit with limit n.
func limitBody(n int64) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			r := c.Request()
			if r.ContentLength > n {
				return tooLarge(n)
			}
			r.Body = http.MaxBytesReader(c.Response(), r.Body, n)
			return next(c)
		}
	}
}

// MaxRestoreBody is the largest POST /v1/settings/restore body: a backup
// (coreapp/backup.MaxData, 3 MiB of base64) and its password.
const MaxRestoreBody = 4 << 20

// access says who may call a route.
type access int

const (
	public       access = iota // no authentication (login checks Basic itself)
	anyPrincipal               // any user (bearer) or API key
	adminOrKey                 // the admin user (bearer) or an API key
	adminOnly                  // the admin user (bearer) only
	userOnly                   // any user (bearer); API keys refused
	monitoring                 // anyPrincipal, or the WA_API_KEY monitoring key
)

type principalKind int

const (
	kindUser principalKind = iota + 1
	kindAPIKey
	kindMonitor
)

// principal is who made a request.
type principal struct {
	kind     principalKind
	username string    // kindUser
	role     auth.Role // kindUser
	token    string    // kindUser: the presented token, for logout
	waID     string    // kindAPIKey: the key's number
	prefix   string    // kindAPIKey
}

// LogValue names the principal without its secrets.
func (p principal) LogValue() slog.Value {
	switch p.kind {
	case kindUser:
		return slog.StringValue("user:" + p.username)
	case kindAPIKey:
		return slog.StringValue("api_key:" + p.prefix)
	case kindMonitor:
		return slog.StringValue("monitoring_key")
	}
	return slog.StringValue("none")
}

// account is the AccountRef a principal addresses: an API key its number,
// everyone else the default account; it names the kind of caller, so
// coreapp can apply the tenant rules.
func (p principal) account() *corev1.AccountRef {
	return &corev1.AccountRef{WaId: p.waID, Caller: p.caller()}
}

// caller is the principal's kind as coreapp sees it.
func (p principal) caller() corev1.Caller {
	switch {
	case p.kind == kindUser && p.role == auth.RoleAdmin:
		return corev1.Caller_CALLER_ADMIN
	case p.kind == kindUser:
		return corev1.Caller_CALLER_USER
	case p.kind == kindAPIKey:
		return corev1.Caller_CALLER_API_KEY
	case p.kind == kindMonitor:
		return corev1.Caller_CALLER_MONITOR
	}
	return corev1.Caller_CALLER_UNSPECIFIED
}

const principalKey = "openwaba.principal"

func principalOf(c echo.Context) principal {
	p, _ := c.Get(principalKey).(principal)
	return p
}

// authenticate resolves the principal, in this order: D360-API-KEY header,
// Authorization Bearer, Authorization Apikey (monitoring routes only), and
// then checks it against the route's access.
func (s *Server) authenticate(a access) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			p, err := s.identify(c, a)
			if err != nil {
				return err
			}
			if err := authorize(p, a); err != nil {
				return err
			}
			c.Set(principalKey, p)
			return next(c)
		}
	}
}

func (s *Server) identify(c echo.Context, a access) (principal, error) {
	ctx := c.Request().Context()
	if key := c.Request().Header.Get("D360-API-KEY"); key != "" {
		k, err := s.auth.ValidateAPIKey(ctx, key)
		if errors.Is(err, auth.ErrInvalidAPIKey) {
			return principal{}, invalidD360Key()
		}
		if err != nil {
			return principal{}, internal(err)
		}
		return principal{kind: kindAPIKey, waID: k.WaID, prefix: k.Prefix}, nil
	}
	h := c.Request().Header.Get(echo.HeaderAuthorization)
	if h == "" {
		return principal{}, unauthorized("missing credentials: send Authorization: Bearer <token> or D360-API-KEY")
	}
	scheme, cred, _ := strings.Cut(h, " ")
	cred = strings.TrimSpace(cred)
	switch strings.ToLower(scheme) {
	case "bearer":
		if isGraph(c) {
			// Cloud's access token is a per-number API key here; a login
			// token works too.
			k, err := s.auth.ValidateAPIKey(ctx, cred)
			switch {
			case err == nil:
				return principal{kind: kindAPIKey, waID: k.WaID, prefix: k.Prefix}, nil
			case !errors.Is(err, auth.ErrInvalidAPIKey):
				return principal{}, internal(err)
			}
		}
		sess, err := s.auth.ValidateToken(ctx, cred)
		switch {
		case errors.Is(err, auth.ErrTokenExpired):
			return principal{}, unauthorized("token expired, log in again")
		case errors.Is(err, auth.ErrInvalidToken):
			return principal{}, unauthorized("invalid token")
		case err != nil:
			return principal{}, internal(err)
		}
		return principal{kind: kindUser, username: sess.Username, role: sess.Role, token: cred}, nil
	case "apikey":
		if a != monitoring || s.opts.MonitoringKey == "" {
			return principal{}, unauthorized("the Apikey scheme is accepted on monitoring endpoints only")
		}
		got := sha256.Sum256([]byte(cred))
		if subtle.ConstantTimeCompare(got[:], s.monit[:]) != 1 {
			return principal{}, unauthorized("invalid API key")
		}
		return principal{kind: kindMonitor}, nil
	}
	return principal{}, unauthorized("unsupported authorization scheme")
}

func authorize(p principal, a access) error {
	switch p.kind {
	case kindAPIKey:
		if a == adminOnly || a == userOnly {
			return forbidden("API keys cannot call this endpoint")
		}
	case kindUser:
		if (a == adminOnly || a == adminOrKey) && p.role != auth.RoleAdmin {
			return forbidden("this endpoint requires the admin role")
		}
	case kindMonitor:
		if a != monitoring {
			return unauthorized("the Apikey scheme is accepted on monitoring endpoints only")
		}
	default:
		return unauthorized("not authenticated")
	}
	return nil
}
