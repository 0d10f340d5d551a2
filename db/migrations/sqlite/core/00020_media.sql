-- +goose Up
-- Media files of an account: uploads (origin 1) and files customers sent
-- (origin 2). sha256 names the file on the volume once stored = 1. An inbound
-- file not stored yet keeps what is needed to download it (media_key sealed
-- by the keystore); download: 0 on demand, 1 pending (auto-download; the
-- webhook waits for it), 2 done, 3 failed. webhook holds the inbound
-- message's webhook event while the download is pending.
CREATE TABLE media (
  id TEXT NOT NULL PRIMARY KEY,
  account_id INTEGER NOT NULL,
  origin INTEGER NOT NULL,
  sha256 TEXT NOT NULL,
  mime_type TEXT NOT NULL,
  size INTEGER NOT NULL DEFAULT 0,
  stored INTEGER NOT NULL DEFAULT 0,
  msg_type TEXT NOT NULL DEFAULT '',
  direct_path TEXT NOT NULL DEFAULT '',
  media_key BLOB NULL,
  enc_sha256 BLOB NULL,
  download INTEGER NOT NULL DEFAULT 0,
  attempts INTEGER NOT NULL DEFAULT 0,
  next_attempt_at INTEGER NOT NULL DEFAULT 0,
  webhook BLOB NULL,
  created_at INTEGER NOT NULL,
  last_used_at INTEGER NOT NULL
);
CREATE INDEX media_account_used ON media (account_id, last_used_at);
CREATE INDEX media_sha ON media (sha256);
CREATE INDEX media_pending ON media (download, next_attempt_at);

-- +goose Down
DROP TABLE media;
