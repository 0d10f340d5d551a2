package rpc

import (
	"context"
	"errors"

	"google.golang.org/grpc/codes"

	"github.com/openwaba/openwaba/api/errcode"
	"github.com/openwaba/openwaba/coreapp/backup"
	corev1 "github.com/openwaba/openwaba/proto/gen/core/v1"
)

// WithBackups lets the server back up and restore numbers with b.
func (s *Server) WithBackups(b *backup.Store) *Server {
	s.backups = b
	return s
}

func checkPassword(p string) error {
	if len(p) < backup.MinPassword || len(p) > backup.MaxPassword {
		return apiError(codes.InvalidArgument, errcode.Invalid, "password must be 8 to 1024 characters")
	}
	return nil
}

// Backup implements core.v1.Core.
func (s *Server) Backup(ctx context.Context, req *corev1.BackupRequest) (*corev1.BackupResponse, error) {
	if err := checkPassword(req.Password); err != nil {
		return nil, err
	}
	a, err := s.verified(ctx, req.Account)
	if err != nil {
		return nil, s.translateOrPass(ctx, "backup", err)
	}
	data, err := s.backups.Backup(ctx, a, req.Password)
	switch {
	case errors.Is(err, backup.ErrNotRegistered):
		return nil, apiError(codes.FailedPrecondition, errcode.NotReady, err.Error())
	case errors.Is(err, backup.ErrTooLarge):
		return nil, apiError(codes.FailedPrecondition, errcode.Invalid, err.Error())
	case err != nil:
		return nil, s.translate(ctx, "backup", err)
	}
	s.log.InfoContext(ctx, "backup made", "wa_id", a.WaID, "bytes", len(data))
	return &corev1.BackupResponse{Data: data}, nil
}

// Restore implements core.v1.Core: the restored number connects at once,
// with the backup's key and Signal identity.
func (s *Server) Restore(ctx context.Context, req *corev1.RestoreRequest) (*corev1.RestoreResponse, error) {
	if err := checkPassword(req.Password); err != nil {
		return nil, err
	}
	if req.Data == "" {
		return nil, apiError(codes.InvalidArgument, errcode.Missing, "data is required")
	}
	waID, err := s.backups.Restore(ctx, req.Data, req.Password)
	switch {
	case errors.Is(err, backup.ErrDecrypt):
		return nil, apiError(codes.InvalidArgument, errcode.Invalid, err.Error())
	case errors.Is(err, backup.ErrExists):
		return nil, apiErrorHTTP(codes.AlreadyExists, 409, errcode.Exists, err.Error())
	case err != nil:
		return nil, s.translate(ctx, "restore", err)
	}
	s.accounts.Forget()
	s.slots.Reconcile()
	s.log.InfoContext(ctx, "number restored from a backup", "wa_id", waID)
	return &corev1.RestoreResponse{WaId: waID}, nil
}
