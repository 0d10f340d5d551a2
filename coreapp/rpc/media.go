package rpc

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	"google.golang.org/grpc/codes"

	"github.com/openwaba/openwaba/api/errcode"
	"github.com/openwaba/openwaba/coreapp/account"
	"github.com/openwaba/openwaba/coreapp/medialib"
	"github.com/openwaba/openwaba/coreapp/slot"
	"github.com/openwaba/openwaba/media"
	"github.com/openwaba/openwaba/media/volume"
	corev1 "github.com/openwaba/openwaba/proto/gen/core/v1"
	messagev1 "github.com/openwaba/openwaba/proto/gen/message/v1"
)

const (
	maxMediaID = 64 // media ids are UUIDs: a longer one is no id of ours
	chunkSize  = media.StreamChunk
)

// checkMedia resolves a media object of a message the business sends (a
// media message's file, an interactive header) after the registry's checks:
// a media id must be a file of the account that can be sent as the type; a
// link's provider must exist and be bound to the link's host. It returns
// the copy to accept: only what the business may set (type, id or link,
// provider, caption, filename); coreapp fills in the rest when it sends.
func (s *Server) checkMedia(ctx context.Context, a account.Account, md *messagev1.Media) (*messagev1.Media, error) {
	t := md.Type
	out := &messagev1.Media{Type: t, Caption: md.Caption, Filename: md.Filename, MediaId: md.MediaId, Link: md.Link, Provider: md.Provider}
	if md.Link != "" {
		if md.Provider != "" {
			p, err := s.media.Provider(ctx, a.ID, md.Provider)
			if errors.Is(err, medialib.ErrLink) {
				return nil, apiError(codes.InvalidArgument, errcode.Invalid, fmt.Sprintf("no media provider named %q; add it under /v1/settings/application/media/providers", md.Provider))
			}
			if err != nil {
				return nil, s.translate(ctx, "send", err)
			}
			// The provider's credentials go only to its hosts: a link to
			// another host is refused now, before any request is made.
			if err := s.media.Fetch.CheckLink(p, md.Link); err != nil {
				return nil, apiError(codes.InvalidArgument, errcode.Invalid, strings.TrimPrefix(err.Error(), medialib.ErrLink.Error()+": "))
			}
		}
		return out, nil
	}
	if len(md.MediaId) > maxMediaID {
		return nil, apiError(codes.NotFound, errcode.NotFound, "unknown media id")
	}
	in, err := s.media.Lookup(ctx, a.ID, md.MediaId)
	if errors.Is(err, medialib.ErrNotFound) {
		return nil, apiError(codes.NotFound, errcode.NotFound, "unknown media id "+md.MediaId)
	}
	if err != nil {
		return nil, s.translate(ctx, "send", err)
	}
	if in.Origin == medialib.OriginInbound && in.Download == medialib.DownloadFailed {
		return nil, apiError(codes.InvalidArgument, errcode.Invalid, "media "+md.MediaId+" could not be downloaded and cannot be sent")
	}
	if limit := media.Limit(t); in.Size > limit {
		return nil, apiError(codes.InvalidArgument, errcode.Invalid, fmt.Sprintf("the file has %d bytes; %s allows at most %d", in.Size, t, limit))
	}
	if !media.Sendable(in.MimeType, t) {
		return nil, apiError(codes.InvalidArgument, errcode.Invalid, fmt.Sprintf("a %s file cannot be sent as %s", media.BaseType(in.MimeType), t))
	}
	return out, nil
}

// UploadMedia implements core.v1.Core: the file is streamed onto the volume
// (never held in memory) and recorded; a stream that ends without being
// closed cleanly (the webapp cancelled it) leaves nothing behind.
func (s *Server) UploadMedia(stream corev1.Core_UploadMediaServer) error {
	ctx := stream.Context()
	first, err := stream.Recv()
	if err != nil {
		return err
	}
	h := first.GetHeader()
	if h == nil {
		return apiError(codes.InvalidArgument, errcode.Invalid, "the first message of an upload must be its header")
	}
	a, err := s.resolve(ctx, h.GetAccount(), false)
	if err != nil {
		return s.translate(ctx, "upload media", err)
	}
	if !media.Accepted(h.MimeType) || len(h.MimeType) > 255 {
		return apiError(codes.InvalidArgument, errcode.Invalid, "Content-Type "+media.BaseType(h.MimeType)+" is not an accepted media type")
	}
	id, err := s.media.Upload(ctx, a.ID, h.MimeType, &chunkReader{stream: stream})
	switch {
	case errors.Is(err, volume.ErrEmpty):
		return apiError(codes.InvalidArgument, errcode.Missing, "empty upload")
	case errors.Is(err, volume.ErrTooLarge):
		return apiError(codes.InvalidArgument, errcode.Invalid, fmt.Sprintf("the file is larger than 100 MB (%d bytes)", media.MaxUpload))
	case errors.Is(err, errBadChunk):
		return apiError(codes.InvalidArgument, errcode.Invalid, err.Error())
	case err != nil:
		return s.translate(ctx, "upload media", err)
	}
	return stream.SendAndClose(&corev1.UploadMediaResponse{Id: id})
}

var errBadChunk = errors.New("an upload message after the header must carry bytes")

// chunkReader reads the bytes of an upload stream.
type chunkReader struct {
	stream corev1.Core_UploadMediaServer
	buf    []byte
}

func (r *chunkReader) Read(p []byte) (int, error) {
	for len(r.buf) == 0 {
		m, err := r.stream.Recv()
		if err != nil {
			return 0, err // io.EOF: the webapp closed the stream cleanly
		}
		if m.GetHeader() != nil {
			return 0, errBadChunk
		}
		r.buf = m.GetChunk()
	}
	n := copy(p, r.buf)
	r.buf = r.buf[n:]
	return n, nil
}

// DownloadMedia implements core.v1.Core.
func (s *Server) DownloadMedia(req *corev1.DownloadMediaRequest, stream corev1.Core_DownloadMediaServer) error {
	ctx := stream.Context()
	a, err := s.resolve(ctx, req.GetAccount(), false)
	if err != nil {
		return s.translate(ctx, "download media", err)
	}
	if req.Id == "" || len(req.Id) > maxMediaID {
		return apiError(codes.NotFound, errcode.NotFound, "unknown media id")
	}
	f, in, err := s.media.Open(ctx, a.ID, req.Id)
	if err != nil {
		return s.mediaError(ctx, "download media", a.ID, err)
	}
	defer f.Close()
	if err := stream.Send(&corev1.DownloadMediaResponse{Part: &corev1.DownloadMediaResponse_Header{Header: &corev1.DownloadMediaHeader{MimeType: in.MimeType, Size: in.Size, Sha256: in.SHA256}}}); err != nil {
		return err
	}
	if req.GetHeaderOnly() {
		return nil
	}
	for {
		// A new buffer per message: a message must not change after Send.
		buf := make([]byte, chunkSize)
		n, err := io.ReadFull(f, buf)
		if n > 0 {
			if err := stream.Send(&corev1.DownloadMediaResponse{Part: &corev1.DownloadMediaResponse_Chunk{Chunk: buf[:n]}}); err != nil {
				return err
			}
		}
		switch {
		case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
			return nil
		case err != nil:
			return s.translate(ctx, "download media", err)
		}
	}
}

// mediaError maps the media library's errors.
func (s *Server) mediaError(ctx context.Context, op string, accountID int64, err error) error {
	switch {
	case errors.Is(err, medialib.ErrNotFound):
		return apiError(codes.NotFound, errcode.NotFound, "unknown media id")
	case errors.Is(err, medialib.ErrDownload):
		return apiError(codes.FailedPrecondition, errcode.MediaDownload, "the customer's file could not be downloaded or did not verify")
	case errors.Is(err, medialib.ErrUnavailable):
		if s.slots.OwnerElsewhere(ctx, accountID) {
			return s.translate(ctx, op, slot.ErrNotOwner)
		}
		s.log.WarnContext(ctx, op+": media server unreachable", "err", err)
		return apiError(codes.Unavailable, errcode.Internal, "the file cannot be fetched from the chat network now; try again")
	}
	return s.translate(ctx, op, err)
}

// DeleteMedia implements core.v1.Core.
func (s *Server) DeleteMedia(ctx context.Context, req *corev1.DeleteMediaRequest) (*corev1.DeleteMediaResponse, error) {
	a, err := s.resolve(ctx, req.GetAccount(), false)
	if err != nil {
		return nil, s.translate(ctx, "delete media", err)
	}
	if req.Id == "" || len(req.Id) > maxMediaID {
		return nil, apiError(codes.NotFound, errcode.NotFound, "unknown media id")
	}
	if err := s.media.Delete(ctx, a.ID, req.Id); err != nil {
		return nil, s.mediaError(ctx, "delete media", a.ID, err)
	}
	return &corev1.DeleteMediaResponse{}, nil
}

// CollectMedia implements core.v1.Core.
func (s *Server) CollectMedia(ctx context.Context, req *corev1.CollectMediaRequest) (*corev1.CollectMediaResponse, error) {
	a, err := s.resolve(ctx, req.GetAccount(), false)
	if err != nil {
		return nil, s.translate(ctx, "collect media", err)
	}
	if err := s.slots.RequireMaster(); err != nil {
		return nil, s.translate(ctx, "collect media", err)
	}
	if err := s.media.CollectGarbage(ctx, a.ID); err != nil {
		return nil, s.translate(ctx, "collect media", err)
	}
	return &corev1.CollectMediaResponse{Status: "processing"}, nil
}

func providersProto(ps []medialib.Provider) *corev1.MediaProviders {
	out := &corev1.MediaProviders{}
	for _, p := range ps {
		out.Providers = append(out.Providers, &corev1.MediaProvider{Name: p.Name, Type: p.Type, Bearer: p.Bearer, BasicUsername: p.BasicUsername, BasicPassword: p.BasicPassword, Hosts: p.Hosts})
	}
	return out
}

// GetMediaProviders implements core.v1.Core. Secrets are returned; the
// webapp masks them.
func (s *Server) GetMediaProviders(ctx context.Context, req *corev1.GetMediaProvidersRequest) (*corev1.MediaProviders, error) {
	a, err := s.resolve(ctx, req.GetAccount(), false)
	if err != nil {
		return nil, s.translate(ctx, "get media providers", err)
	}
	ps, err := s.media.Providers(ctx, a.ID)
	if err != nil {
		return nil, s.translate(ctx, "get media providers", err)
	}
	return providersProto(ps), nil
}

// maxProviders caps an account's media providers.
const maxProviders = 64

// SetMediaProviders implements core.v1.Core.
func (s *Server) SetMediaProviders(ctx context.Context, req *corev1.SetMediaProvidersRequest) (*corev1.MediaProviders, error) {
	a, err := s.resolve(ctx, req.GetAccount(), false)
	if err != nil {
		return nil, s.translate(ctx, "set media providers", err)
	}
	if len(req.Providers) == 0 {
		return nil, apiError(codes.InvalidArgument, errcode.Missing, "at least one provider is required")
	}
	if len(req.Providers) > maxProviders {
		return nil, apiError(codes.InvalidArgument, errcode.Invalid, fmt.Sprintf("at most %d providers", maxProviders))
	}
	var ps []medialib.Provider
	for i, p := range req.Providers {
		field := fmt.Sprintf("providers[%d]", i)
		switch {
		case !media.ValidProviderName(p.Name):
			return nil, apiError(codes.InvalidArgument, errcode.Invalid, field+".name must be 1 to 64 letters, digits, '.', '_' or '-'")
		case p.Type != "www":
			return nil, apiError(codes.InvalidArgument, errcode.Invalid, field+".type must be www")
		case (p.Bearer != "") == (p.BasicUsername != ""):
			return nil, apiError(codes.InvalidArgument, errcode.Invalid, field+".config needs bearer or basic, one of them")
		case len(p.Bearer) > media.MaxProviderBearer || len(p.BasicUsername) > media.MaxProviderUsername || len(p.BasicPassword) > media.MaxProviderPassword:
			return nil, apiError(codes.InvalidArgument, errcode.Invalid, field+".config is too long")
		case strings.ContainsAny(p.Bearer+p.BasicUsername+p.BasicPassword, "\r\n\x00"):
			return nil, apiError(codes.InvalidArgument, errcode.Invalid, field+".config contains control characters")
		case strings.Contains(p.BasicUsername, ":"):
			return nil, apiError(codes.InvalidArgument, errcode.Invalid, field+".config.basic.username must not contain ':'")
		case len(p.Hosts) == 0:
			return nil, apiError(codes.InvalidArgument, errcode.Missing, field+".hosts is required: the hosts the provider's credentials may be sent to")
		case len(p.Hosts) > medialib.MaxProviderHosts:
			return nil, apiError(codes.InvalidArgument, errcode.Invalid, fmt.Sprintf("%s.hosts has %d entries, more than %d", field, len(p.Hosts), medialib.MaxProviderHosts))
		}
		for j, h := range p.Hosts {
			if err := medialib.ValidHostPattern(h); err != nil {
				return nil, apiError(codes.InvalidArgument, errcode.Invalid, fmt.Sprintf("%s.hosts[%d]: %v", field, j, err))
			}
		}
		ps = append(ps, medialib.Provider{Name: p.Name, Type: p.Type, Bearer: p.Bearer, BasicUsername: p.BasicUsername, BasicPassword: p.BasicPassword, Hosts: p.Hosts})
	}
	cur, err := s.media.Providers(ctx, a.ID)
	if err != nil {
		return nil, s.translate(ctx, "set media providers", err)
	}
	names := map[string]bool{}
	for _, p := range append(cur, ps...) {
		names[p.Name] = true
	}
	if len(names) > maxProviders {
		return nil, apiError(codes.InvalidArgument, errcode.Invalid, fmt.Sprintf("at most %d providers", maxProviders))
	}
	if err := s.media.SetProviders(ctx, a.ID, ps); err != nil {
		return nil, s.translate(ctx, "set media providers", err)
	}
	return s.GetMediaProviders(ctx, &corev1.GetMediaProvidersRequest{Account: req.Account})
}

// DeleteMediaProvider implements core.v1.Core.
func (s *Server) DeleteMediaProvider(ctx context.Context, req *corev1.DeleteMediaProviderRequest) (*corev1.MediaProviders, error) {
	a, err := s.resolve(ctx, req.GetAccount(), false)
	if err != nil {
		return nil, s.translate(ctx, "delete media provider", err)
	}
	if err := s.media.DeleteProvider(ctx, a.ID, req.Name); err != nil {
		if errors.Is(err, medialib.ErrNotFound) {
			return nil, apiError(codes.NotFound, errcode.NotFound, "no media provider named "+req.Name)
		}
		return nil, s.translate(ctx, "delete media provider", err)
	}
	return s.GetMediaProviders(ctx, &corev1.GetMediaProvidersRequest{Account: req.Account})
}
