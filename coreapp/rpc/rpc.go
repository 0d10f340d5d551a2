// Package rpc is coreapp's gRPC server (core.v1.Core): the webapp forwards
// every REST call but authentication here. Errors leave as gRPC statuses that
// carry a core.v1.Error with the on-prem code; internal causes go to the log
// only. Every call must present the cluster token (metadata "authorization:
// Bearer <token>").
package rpc

import (
	"context"
	"crypto/subtle"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/openwaba/openwaba/api/errcode"
	"github.com/openwaba/openwaba/api/graph"
	"github.com/openwaba/openwaba/api/message"
	"github.com/openwaba/openwaba/api/phone"
	"github.com/openwaba/openwaba/coreapp/account"
	"github.com/openwaba/openwaba/coreapp/backup"
	"github.com/openwaba/openwaba/coreapp/cluster"
	"github.com/openwaba/openwaba/coreapp/medialib"
	"github.com/openwaba/openwaba/coreapp/messagegc"
	coreprofile "github.com/openwaba/openwaba/coreapp/profile"
	"github.com/openwaba/openwaba/coreapp/receive"
	"github.com/openwaba/openwaba/coreapp/send"
	"github.com/openwaba/openwaba/coreapp/settings"
	"github.com/openwaba/openwaba/coreapp/slot"
	"github.com/openwaba/openwaba/coreapp/stats"
	"github.com/openwaba/openwaba/coreapp/webhook"
	"github.com/openwaba/openwaba/db"
	"github.com/openwaba/openwaba/db/keystore"
	corev1 "github.com/openwaba/openwaba/proto/gen/core/v1"
	messagev1 "github.com/openwaba/openwaba/proto/gen/message/v1"
)

// Server implements core.v1.Core.
type Server struct {
	corev1.UnimplementedCoreServer
	log      *slog.Logger
	accounts *account.Store
	settings *settings.Store
	send     *send.Store
	receive  *receive.Store
	slots    *slot.Manager
	media    *medialib.Store
	cluster  *cluster.Cluster
	// webhooks checks Cloud callback URLs; ks seals their app secrets
	// (WithWebhooks).
	webhooks  *webhook.Dispatcher
	ks        *keystore.Keystore
	profiles  *coreprofile.Store   // WithProfiles
	messageGC *messagegc.Collector // WithMessageGC
	backups   *backup.Store        // WithBackups
	stats     *stats.Source        // WithStats
	// maxPending is WA_MAX_PENDING_MESSAGES (WithMaxPending; 0: no limit).
	maxPending int
	db         *sql.DB   // WithSupport
	started    time.Time // WithSupport
}

// WithWebhooks lets the server set Cloud-format webhooks: d performs the
// subscription check, ks seals the app secret.
func (s *Server) WithWebhooks(d *webhook.Dispatcher, ks *keystore.Keystore) *Server {
	s.webhooks, s.ks = d, ks
	return s
}

var _ corev1.CoreServer = (*Server)(nil)

// New returns a Server.
func New(log *slog.Logger, accounts *account.Store, st *settings.Store, snd *send.Store, rcv *receive.Store, slots *slot.Manager, ml *medialib.Store, cl *cluster.Cluster) *Server {
	return &Server{log: log, accounts: accounts, settings: st, send: snd, receive: rcv, slots: slots, media: ml, cluster: cl}
}

// AuthInterceptor refuses calls without the cluster token.
func AuthInterceptor(token []byte) grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		if err := checkToken(ctx, token); err != nil {
			return nil, err
		}
		return handler(ctx, req)
	}
}

// errCutOff answers calls while this node cannot reach the database.
var errCutOff = status.Error(codes.Unavailable, "this coreapp cannot reach the database")

// AvailabilityInterceptor refuses calls while this node counts itself cut
// from the database, and aborts the calls in flight when it becomes so,
// with Unavailable: the webapp retries them on another node (with the same
// request id, so a send that did commit is not sent twice).
func AvailabilityInterceptor(cl *cluster.Cluster) grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		if info.FullMethod == corev1.Core_Wake_FullMethodName {
			return handler(ctx, req)
		}
		dbctx := cl.DBContext()
		if dbctx.Err() != nil {
			return nil, errCutOff
		}
		ctx, cancel := context.WithCancel(ctx)
		defer cancel()
		defer context.AfterFunc(dbctx, cancel)()
		resp, err := handler(ctx, req)
		if err != nil && dbctx.Err() != nil {
			return nil, errCutOff
		}
		return resp, err
	}
}

// StreamAuthInterceptor refuses streams without the cluster token.
func StreamAuthInterceptor(token []byte) grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
		if err := checkToken(ss.Context(), token); err != nil {
			return err
		}
		return handler(srv, ss)
	}
}

func checkToken(ctx context.Context, token []byte) error {
	want := []byte("Bearer " + string(token))
	md, _ := metadata.FromIncomingContext(ctx)
	got := md.Get("authorization")
	if len(got) != 1 || subtle.ConstantTimeCompare([]byte(got[0]), want) != 1 {
		return status.Error(codes.Unauthenticated, "missing or wrong cluster token")
	}
	return nil
}

// apiError builds a status carrying an on-prem error of the catalog.
func apiError(c codes.Code, code errcode.Code, details string) error {
	return apiErrorHTTP(c, 0, code, details)
}

// apiErrorHTTP is apiError with the HTTP status the webapp must answer (0:
// the one of the gRPC code).
func apiErrorHTTP(c codes.Code, httpStatus int32, code errcode.Code, details string) error {
	st, err := status.New(c, code.Title()).WithDetails(&corev1.Error{Code: int32(code), Title: code.Title(), Details: details, HttpStatus: httpStatus})
	if err != nil {
		return status.Error(c, code.Title())
	}
	return st.Err()
}

// checkError renders an error of the message registry's checks.
func checkError(err error) error {
	var e *errcode.Error
	if errors.As(err, &e) {
		return apiError(codes.InvalidArgument, e.Code, e.Details)
	}
	return apiError(codes.InvalidArgument, errcode.Invalid, err.Error())
}

// translate maps an internal error to the status the webapp sees.
func (s *Server) translate(ctx context.Context, op string, err error) error {
	var se *settings.Error
	var ce *errcode.Error
	var gs interface{ GRPCStatus() *status.Status }
	switch {
	case err == nil:
		return nil
	case errors.As(err, &gs) && gs.GRPCStatus().Code() != codes.Unknown:
		return err // already a status (errNoSuchNumber)
	case errors.As(err, &se):
		if se.Code == errcode.AccessDenied {
			return apiError(codes.PermissionDenied, se.Code, se.Details)
		}
		return apiError(codes.InvalidArgument, se.Code, se.Details)
	case errors.As(err, &ce): // the network's own on-prem error (two-step)
		switch ce.Code {
		case errcode.AccessDenied:
			return apiError(codes.PermissionDenied, ce.Code, ce.Details)
		case errcode.TooManyRequests:
			return apiError(codes.ResourceExhausted, ce.Code, ce.Details)
		}
		return apiError(codes.InvalidArgument, ce.Code, ce.Details)
	case errors.Is(err, account.ErrNoAccount):
		return apiError(codes.FailedPrecondition, errcode.NotReady, "no phone number is registered; register one with POST /v1/account")
	case errors.Is(err, account.ErrNotFound):
		return apiError(codes.NotFound, errcode.NotFound, "unknown phone number")
	case errors.Is(err, account.ErrNoPending):
		return apiError(codes.FailedPrecondition, errcode.NotFound, account.ErrNoPending.Error())
	case errors.Is(err, account.ErrAmbiguous):
		return apiError(codes.InvalidArgument, errcode.Invalid, account.ErrAmbiguous.Error())
	case errors.Is(err, account.ErrWrongCode):
		return apiError(codes.InvalidArgument, errcode.Invalid, account.ErrWrongCode.Error())
	case errors.Is(err, account.ErrTooManyCodes):
		return apiError(codes.ResourceExhausted, errcode.TooManyRequests, account.ErrTooManyCodes.Error())
	case errors.Is(err, account.ErrNetworkRefused):
		s.log.WarnContext(ctx, op+": refused by the network", "err", err)
		return apiError(codes.PermissionDenied, errcode.AccessDenied, "the chat network refused the registration")
	case errors.Is(err, account.ErrNetwork):
		s.log.WarnContext(ctx, op+": chat network unreachable", "err", err)
		return apiError(codes.Unavailable, errcode.Internal, "the chat network cannot be reached; try again")
	case errors.Is(err, slot.ErrNotMaster):
		return apiError(codes.FailedPrecondition, errcode.NotPrimaryMaster, "this call runs on the primary master; try another node")
	case errors.Is(err, slot.ErrNotOwner):
		return apiError(codes.FailedPrecondition, errcode.NotPrimaryCoreapp, "another node holds the number's connection; try another node")
	case errors.Is(err, slot.ErrReshard):
		s.log.WarnContext(ctx, op+": unfinished", "err", err)
		return apiError(codes.Unavailable, errcode.Internal, "the shard change did not complete yet; the primary master completes it, or retry")
	case errors.Is(err, send.ErrRequestConflict):
		// The IETF Idempotency-Key draft's answer to a key reused with
		// another payload.
		return apiErrorHTTP(codes.AlreadyExists, 422, errcode.InvalidRequest,
			"the X-Request-Id "+requestID(ctx)+" was already used for a different message (another recipient or content); "+
				"a request id names one message for as long as that message is stored: use a new one")
	case errors.Is(err, receive.ErrNotFound):
		return apiError(codes.NotFound, errcode.NotFound, "unknown message id")
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled):
		return status.FromContextError(err).Err()
	case db.IsRetryable(err):
		// Still contended after retries: the webapp retries Unavailable with
		// the same request id, so a send is never duplicated.
		s.log.WarnContext(ctx, op+": database contention", "request_id", requestID(ctx), "err", err)
		return apiError(codes.Unavailable, errcode.Overloaded, "temporary database contention; retry")
	}
	s.log.ErrorContext(ctx, op+" failed", "request_id", requestID(ctx), "err", err)
	return apiError(codes.Internal, errcode.Internal, "")
}

func requestID(ctx context.Context) string {
	md, _ := metadata.FromIncomingContext(ctx)
	if v := md.Get("x-request-id"); len(v) > 0 {
		return v[0]
	}
	return ""
}

// RegisterAccount implements core.v1.Core.
func (s *Server) RegisterAccount(ctx context.Context, req *corev1.RegisterAccountRequest) (*corev1.RegisterAccountResponse, error) {
	if _, err := phone.FromParts(req.Cc, req.PhoneNumber); err != nil {
		return nil, apiError(codes.InvalidArgument, errcode.Invalid, err.Error())
	}
	method := req.Method
	if method == "" {
		method = "sms"
	}
	if method != "sms" && method != "voice" {
		return nil, apiError(codes.InvalidArgument, errcode.Invalid, "method must be sms or voice")
	}
	res, err := s.accounts.Register(ctx, account.RegisterRequest{CC: req.Cc, PhoneNumber: req.PhoneNumber, Method: method, Cert: req.Cert, Pin: req.Pin})
	if err != nil {
		return nil, s.translate(ctx, "register", err)
	}
	if res.AlreadyRegistered {
		s.slots.Reconcile()
	}
	return &corev1.RegisterAccountResponse{AlreadyRegistered: res.AlreadyRegistered, Vname: res.VName}, nil
}

// VerifyAccount implements core.v1.Core.
func (s *Server) VerifyAccount(ctx context.Context, req *corev1.VerifyAccountRequest) (*corev1.VerifyAccountResponse, error) {
	if len(req.Code) != 6 || !phone.Digits(req.Code) {
		return nil, apiError(codes.InvalidArgument, errcode.Invalid, "code must be 6 digits")
	}
	a, err := s.accounts.Verify(ctx, req.GetAccount().GetWaId(), req.Code)
	if err != nil {
		return nil, s.translate(ctx, "verify", err)
	}
	s.slots.Reconcile()
	return &corev1.VerifyAccountResponse{Account: toProto(a)}, nil
}

func toProto(a account.Account) *corev1.Account {
	return &corev1.Account{WaId: a.WaID, Cc: a.CC, PhoneNumber: a.PhoneNumber, State: a.State, Vname: a.VName, Shards: uint32(a.Shards),
		PhoneNumberId: graph.PhoneNumberID(a.ID), WabaId: graph.WABAID(a.ID)}
}

// errNoSuchNumber is a phone_number_id that names no number the caller may
// address: Graph's "Object with ID … does not exist" (100, subcode 33).
func errNoSuchNumber(id int64) error {
	return apiError(codes.NotFound, errcode.NotFound, fmt.Sprintf("Unsupported request. Object with ID '%d' does not exist, cannot be loaded due to missing permissions, or does not support this operation", id))
}

// resolve finds the account ref addresses: by wa_id (empty: the default
// account), by the Cloud API's phone_number_id alone, or by both, which
// must then agree (an API key's number and the number in the path). fresh
// skips the cache.
func (s *Server) resolve(ctx context.Context, ref *corev1.AccountRef, fresh bool) (account.Account, error) {
	pnid := ref.GetPhoneNumberId()
	if pnid != 0 && ref.GetWaId() == "" {
		kind, id := graph.Parse(strconv.FormatInt(pnid, 10))
		if kind != graph.PhoneNumber {
			return account.Account{}, errNoSuchNumber(pnid)
		}
		a, err := s.accounts.ByID(ctx, id)
		if errors.Is(err, account.ErrNotFound) {
			return a, errNoSuchNumber(pnid)
		}
		return a, err
	}
	resolve := s.accounts.Resolve
	if fresh {
		resolve = s.accounts.ResolveFresh
	}
	a, err := resolve(ctx, ref.GetWaId())
	if err == nil && pnid != 0 && graph.PhoneNumberID(a.ID) != pnid {
		return account.Account{}, errNoSuchNumber(pnid)
	}
	return a, err
}

// GetAccount implements core.v1.Core.
func (s *Server) GetAccount(ctx context.Context, req *corev1.GetAccountRequest) (*corev1.Account, error) {
	// Uncached: an admin reads back what it just changed, maybe through
	// another node.
	a, err := s.resolve(ctx, req.GetAccount(), true)
	if err != nil {
		return nil, s.translate(ctx, "get account", err)
	}
	return toProto(a), nil
}

// verified resolves an account that may send and receive.
func (s *Server) verified(ctx context.Context, ref *corev1.AccountRef) (account.Account, error) {
	a, err := s.resolve(ctx, ref, false)
	if err != nil {
		return a, err
	}
	if !a.Verified() {
		return a, apiError(codes.FailedPrecondition, errcode.NotReady, "the phone number's registration is not complete; verify it with POST /v1/account/verify")
	}
	return a, nil
}

// maxCallbackData is the longest biz_opaque_callback_data (Graph
// reference: 512 characters).
const maxCallbackData = 512

// SendMessage implements core.v1.Core.
func (s *Server) SendMessage(ctx context.Context, req *corev1.SendMessageRequest) (*corev1.SendMessageResponse, error) {
	a, err := s.verified(ctx, req.Account)
	if err != nil {
		return nil, s.translateOrPass(ctx, "send", err)
	}
	switch {
	case !phone.Valid(req.To):
		return nil, apiError(codes.InvalidArgument, errcode.Invalid, "to must be a phone number of 5 to 20 digits")
	case req.To == a.WaID:
		return nil, apiError(codes.InvalidArgument, errcode.BadUser, "a message cannot be sent to the sender's own number")
	case req.RecipientType != "" && req.RecipientType != "individual":
		return nil, apiError(codes.InvalidArgument, errcode.RecipientType, "recipient_type must be individual")
	case len(req.RequestId) > 64:
		return nil, apiError(codes.InvalidArgument, errcode.Invalid, "request id longer than 64 characters")
	}
	full, err := s.send.Backlogged(ctx, a, s.maxPending)
	if err == nil && full && req.RequestId != "" {
		// A retry of a send already accepted gets its id, not a refusal.
		var retry bool
		if retry, err = s.send.RequestAccepted(ctx, a.ID, req.RequestId); retry {
			full = false
		}
	}
	if err != nil {
		return nil, s.translate(ctx, "send", err)
	} else if full {
		return nil, apiErrorHTTP(codes.ResourceExhausted, 503, errcode.Overloaded,
			fmt.Sprintf("the number has %d or more messages waiting to be sent; retry when they are (WA_MAX_PENDING_MESSAGES)", s.maxPending))
	}
	// The registry's checks again (coreapp is authoritative), then what
	// needs state: the media ids and providers, the message a reaction
	// points at.
	if err := message.Default.Check(req.Content); err != nil {
		return nil, checkError(err)
	}
	if len(req.CallbackData) > maxCallbackData {
		return nil, apiError(codes.InvalidArgument, errcode.Invalid, fmt.Sprintf("biz_opaque_callback_data is longer than %d characters", maxCallbackData))
	}
	c := proto.Clone(req.Content).(*messagev1.Content)
	if t := c.GetTemplate(); t != nil && req.HydrateNow {
		// Cloud answers template errors at once: hydrate now, on the node
		// that holds the number's connection (1018 elsewhere, the webapp
		// tries the next node). The sender keeps the hydrated content.
		iq, cache, err := s.accountTemplateIQ(ctx, a.ID, "send")
		if err != nil {
			return nil, err
		}
		if err := cache.Hydrate(ctx, a.ID, iq, t); err != nil {
			var ce *errcode.Error
			if errors.As(err, &ce) {
				return nil, apiError(codes.InvalidArgument, ce.Code, ce.Details)
			}
			return nil, s.networkError(ctx, "send", err)
		}
	}
	for _, mp := range message.MediaOf(c) {
		checked, err := s.checkMedia(ctx, a, *mp)
		if err != nil {
			return nil, err
		}
		*mp = checked
	}
	var fail *webhook.Error
	if r := c.GetReaction(); r != nil {
		ok, err := s.send.InConversation(ctx, a.ID, req.To, r.MessageId)
		if err != nil {
			return nil, s.translate(ctx, "send", err)
		}
		if !ok {
			// Meta's rule: a reaction to a message that is not in the
			// conversation is not delivered, and the business gets a
			// failed status with 131009.
			e := webhook.Err(errcode.CloudInvalidParameter, "reaction.message_id "+r.MessageId+" is not a message of this conversation")
			fail = &e
		}
	}
	reqID := req.RequestId
	if reqID == "" {
		reqID = requestID(ctx)
	}
	m, dup, err := s.send.Accept(ctx, a, reqID, req.To, c, req.CallbackData)
	if err != nil {
		return nil, s.translate(ctx, "send", err)
	}
	switch {
	case dup:
	case fail != nil:
		// Failed before any send (the sender skips failed messages).
		done := make(chan error, 1)
		s.send.Fail(a.ID, req.To, []string{m.ID}, time.Now().Unix(), *fail, func(err error) { done <- err })
		if err := <-done; err != nil {
			return nil, s.translate(ctx, "send", err)
		}
	default:
		s.slots.Enqueue(a.ID, m)
	}
	return &corev1.SendMessageResponse{Id: m.ID}, nil
}

// translateOrPass keeps errors that already are statuses.
func (s *Server) translateOrPass(ctx context.Context, op string, err error) error {
	if _, ok := status.FromError(err); ok {
		return err
	}
	return s.translate(ctx, op, err)
}

// MarkRead implements core.v1.Core.
func (s *Server) MarkRead(ctx context.Context, req *corev1.MarkReadRequest) (*corev1.MarkReadResponse, error) {
	a, err := s.verified(ctx, req.Account)
	if err != nil {
		return nil, s.translateOrPass(ctx, "mark read", err)
	}
	if req.MessageId == "" || len(req.MessageId) > 64 {
		return nil, apiError(codes.NotFound, errcode.NotFound, "unknown message id")
	}
	sh, err := s.receive.MarkRead(ctx, a.ID, req.MessageId)
	if err != nil {
		return nil, s.translate(ctx, "mark read", err)
	}
	s.slots.ReceiptsPending(a.ID, sh)
	return &corev1.MarkReadResponse{}, nil
}

// CheckContacts implements core.v1.Core. Both blocking modes answer the
// final status at once; a number that is not a valid phone number is
// invalid without asking the network.
func (s *Server) CheckContacts(ctx context.Context, req *corev1.CheckContactsRequest) (*corev1.CheckContactsResponse, error) {
	a, err := s.verified(ctx, req.Account)
	if err != nil {
		return nil, s.translateOrPass(ctx, "check contacts", err)
	}
	norm := make([]string, len(req.Contacts))
	var ask []string
	for i, in := range req.Contacts {
		if n, err := phone.Parse(in); err == nil {
			norm[i] = n.String()
			ask = append(ask, norm[i])
		}
	}
	found := map[string]bool{}
	failed := false
	if len(ask) > 0 {
		found, err = s.slots.CheckContacts(ctx, a.ID, ask)
		if errors.Is(err, slot.ErrNotConnected) && s.slots.OwnerElsewhere(ctx, a.ID) {
			return nil, s.translate(ctx, "check contacts", slot.ErrNotOwner)
		}
		if errors.Is(err, slot.ErrNotConnected) {
			failed = true
		} else if err != nil {
			return nil, s.translate(ctx, "check contacts", err)
		}
	}
	out := &corev1.CheckContactsResponse{}
	for i, in := range req.Contacts {
		r := &corev1.ContactResult{Input: in, Status: "invalid"}
		switch {
		case !phone.Valid(norm[i]):
		case failed:
			r.Status = "failed"
		case found[norm[i]]:
			r.Status, r.WaId = "valid", norm[i]
		}
		out.Contacts = append(out.Contacts, r)
	}
	return out, nil
}

// actor is who changes settings: the admin, or else a tenant (an API key,
// and anyone the webapp did not name).
func actor(ref *corev1.AccountRef) settings.Actor {
	if ref.GetCaller() == corev1.Caller_CALLER_ADMIN {
		return settings.ActorAdmin
	}
	return settings.ActorTenant
}

// settingsAccount resolves the account whose settings a call addresses:
// account 0 (the deployment's settings) while no number exists.
func (s *Server) settingsAccount(ctx context.Context, ref *corev1.AccountRef) (int64, string, error) {
	a, err := s.resolve(ctx, ref, false)
	if errors.Is(err, account.ErrNoAccount) {
		return 0, "", nil
	}
	if err != nil {
		return 0, "", err
	}
	return a.ID, a.WaID, nil
}

func settingsJSON(app settings.Application, waID string) (*corev1.Settings, error) {
	app.WaID = waID
	b, err := json.Marshal(app)
	if err != nil {
		return nil, err
	}
	return &corev1.Settings{Json: b}, nil
}

// GetSettings implements core.v1.Core.
func (s *Server) GetSettings(ctx context.Context, req *corev1.GetSettingsRequest) (*corev1.Settings, error) {
	id, waID, err := s.settingsAccount(ctx, req.Account)
	if err != nil {
		return nil, s.translate(ctx, "get settings", err)
	}
	app, err := s.settings.Get(ctx, id)
	if err != nil {
		return nil, s.translate(ctx, "get settings", err)
	}
	return settingsJSON(app, waID)
}

// UpdateSettings implements core.v1.Core.
func (s *Server) UpdateSettings(ctx context.Context, req *corev1.UpdateSettingsRequest) (*corev1.Settings, error) {
	id, waID, err := s.settingsAccount(ctx, req.Account)
	if err != nil {
		return nil, s.translate(ctx, "update settings", err)
	}
	app, err := s.settings.Update(ctx, id, req.PatchJson, actor(req.Account))
	if err != nil {
		return nil, s.translate(ctx, "update settings", err)
	}
	if settings.SetsWebhookURL(req.PatchJson) {
		s.urlChanged(ctx, id)
	}
	return settingsJSON(app, waID)
}

// ResetSettings implements core.v1.Core.
func (s *Server) ResetSettings(ctx context.Context, req *corev1.ResetSettingsRequest) (*corev1.Settings, error) {
	id, waID, err := s.settingsAccount(ctx, req.Account)
	if err != nil {
		return nil, s.translate(ctx, "reset settings", err)
	}
	app, err := s.settings.Reset(ctx, id, actor(req.Account))
	if err != nil {
		return nil, s.translate(ctx, "reset settings", err)
	}
	return settingsJSON(app, waID)
}

// GetWebhookConfig implements core.v1.Core. The Cloud format's secrets
// are masked.
func (s *Server) GetWebhookConfig(ctx context.Context, req *corev1.GetWebhookConfigRequest) (*corev1.WebhookConfig, error) {
	id, _, err := s.settingsAccount(ctx, req.Account)
	if err != nil {
		return nil, s.translate(ctx, "get webhook config", err)
	}
	app, err := s.settings.Get(ctx, id)
	if err != nil {
		return nil, s.translate(ctx, "get webhook config", err)
	}
	return webhookConfig(app.Webhooks), nil
}

func webhookConfig(w settings.Webhooks) *corev1.WebhookConfig {
	out := &corev1.WebhookConfig{Url: w.URL, Headers: w.Headers, Format: settings.FormatOnPrem}
	if w.Cloud() {
		out.Format = settings.FormatCloud
		out.VerifyToken = mask(w.VerifyToken)
		if len(w.AppSecret) > 0 {
			out.AppSecret = "********"
		}
	}
	return out
}

// mask shows the last 4 characters of a secret of at least 12, else none.
func mask(v string) string {
	if v == "" {
		return ""
	}
	if len(v) < 12 {
		return "********"
	}
	return "********" + v[len(v)-4:]
}

// Limits of the Cloud webhook settings.
const (
	maxVerifyToken = 256
	maxAppSecret   = 256
)

// SetWebhookConfig implements core.v1.Core: it sets webhooks.url and the
// extra headers, replacing the previous headers, and the format. A Cloud
// URL must pass Meta's subscription check (GET with hub.challenge) first;
// its app secret is sealed.
func (s *Server) SetWebhookConfig(ctx context.Context, req *corev1.SetWebhookConfigRequest) (*corev1.WebhookConfig, error) {
	id, _, err := s.settingsAccount(ctx, req.Account)
	if err != nil {
		return nil, s.translate(ctx, "set webhook config", err)
	}
	cfg := req.GetConfig()
	if cfg.GetUrl() == "" {
		return nil, apiError(codes.InvalidArgument, errcode.Missing, "url is required")
	}
	var cloud *settings.CloudWebhook
	switch cfg.GetFormat() {
	case "", settings.FormatOnPrem:
		if cfg.GetVerifyToken() != "" || cfg.GetAppSecret() != "" {
			return nil, apiError(codes.InvalidArgument, errcode.NotRequired, `verify_token and app_secret belong to format "cloud"`)
		}
	case settings.FormatCloud:
		var kept []byte // the current secret, for a new URL without one (Graph's override)
		if cfg.GetAppSecret() == "" {
			cur, err := s.settings.Get(ctx, id)
			if err != nil {
				return nil, s.translate(ctx, "set webhook config", err)
			}
			if cur.Webhooks.Cloud() {
				kept = cur.Webhooks.AppSecret
			}
		}
		switch {
		case cfg.GetAppSecret() == "" && len(kept) == 0:
			return nil, apiError(codes.InvalidArgument, errcode.Missing, `app_secret is required for format "cloud": it signs every webhook (X-Hub-Signature-256)`)
		case len(cfg.GetAppSecret()) > maxAppSecret || len(cfg.GetVerifyToken()) > maxVerifyToken:
			return nil, apiError(codes.InvalidArgument, errcode.Invalid, fmt.Sprintf("app_secret and verify_token are at most %d characters", maxAppSecret))
		case s.webhooks == nil || s.ks == nil:
			return nil, apiError(codes.FailedPrecondition, errcode.NotReady, "this node cannot set Cloud webhooks")
		}
		if err := settings.ValidateWebhookURL(cfg.GetUrl()); err != nil {
			return nil, s.translate(ctx, "set webhook config", err)
		}
		tenant := actor(req.Account) != settings.ActorAdmin
		if err := s.webhooks.Verify(ctx, cfg.GetUrl(), cfg.GetVerifyToken(), tenant); err != nil {
			if errors.Is(err, webhook.ErrChallenge) {
				return nil, apiError(codes.InvalidArgument, errcode.Invalid, err.Error())
			}
			return nil, s.translate(ctx, "set webhook config", err)
		}
		cloud = &settings.CloudWebhook{VerifyToken: cfg.GetVerifyToken(), AppSecret: kept}
		if cfg.GetAppSecret() != "" {
			cloud.AppSecret = s.ks.Seal([]byte(cfg.GetAppSecret()), webhook.AppSecretContext)
		}
	default:
		return nil, apiError(codes.InvalidArgument, errcode.Invalid, `format must be "onprem" or "cloud"`)
	}
	app, err := s.settings.SetWebhook(ctx, id, cfg.GetUrl(), cfg.GetHeaders(), cloud, actor(req.Account))
	if err != nil {
		return nil, s.translate(ctx, "set webhook config", err)
	}
	s.urlChanged(ctx, id)
	return webhookConfig(app.Webhooks), nil
}

// urlChanged lets the account's events waiting for a failed URL go to the
// new one now.
func (s *Server) urlChanged(ctx context.Context, accountID int64) {
	if s.webhooks == nil {
		return
	}
	if err := s.webhooks.URLChanged(ctx, accountID); err != nil {
		s.log.WarnContext(ctx, "webhook: could not reschedule events for the new URL (they go at their next attempt)", "account_id", accountID, "err", err)
	}
}

// GetHealth implements core.v1.Core.
func (s *Server) GetHealth(ctx context.Context, req *corev1.GetHealthRequest) (*corev1.GetHealthResponse, error) {
	a, err := s.resolve(ctx, req.GetAccount(), false)
	if errors.Is(err, account.ErrNoAccount) {
		return &corev1.GetHealthResponse{GatewayStatus: "unregistered"}, nil
	}
	if err != nil {
		return nil, s.translate(ctx, "health", err)
	}
	if !a.Verified() {
		return &corev1.GetHealthResponse{GatewayStatus: "unregistered"}, nil
	}
	status, nodes, err := s.slots.Health(ctx, a)
	if err != nil {
		return nil, s.translate(ctx, "health", err)
	}
	out := &corev1.GetHealthResponse{GatewayStatus: status, Nodes: nodes}
	if s.webhooks != nil {
		// Health does not fail with the delivery log: without it the
		// counts are left out.
		if failing, dead, err := s.webhooks.Counts(ctx, a.ID); err != nil {
			s.log.WarnContext(ctx, "health: counting webhook deliveries failed", "err", err)
		} else {
			out.Webhooks = &corev1.WebhookCounts{Failing: int64(failing), Dead: int64(dead)}
		}
	}
	return out, nil
}

// SetShards implements core.v1.Core.
func (s *Server) SetShards(ctx context.Context, req *corev1.SetShardsRequest) (*corev1.Account, error) {
	a, err := s.verified(ctx, req.Account)
	if err != nil {
		return nil, s.translateOrPass(ctx, "set shards", err)
	}
	if req.Cc+req.PhoneNumber != a.WaID {
		return nil, apiError(codes.InvalidArgument, errcode.Invalid, "cc and phone_number do not name the account")
	}
	if !slices.Contains(slot.ValidShards, int(req.Shards)) {
		return nil, apiError(codes.InvalidArgument, errcode.Invalid, "shards must be 1, 2, 4, 8, 16 or 32")
	}
	a, err = s.slots.SetShards(ctx, a, int(req.Shards))
	if err != nil {
		return nil, s.translate(ctx, "set shards", err)
	}
	return toProto(a), nil
}

// Wake implements core.v1.Core (called by other coreapps).
func (s *Server) Wake(ctx context.Context, req *corev1.WakeRequest) (*corev1.WakeResponse, error) {
	s.cluster.HandleWake(req.Slots)
	return &corev1.WakeResponse{}, nil
}
