-- +goose Up
-- Media files of an account: uploads (origin 1) and files customers sent
-- (origin 2). sha256 names the file on the volume once stored = 1. An inbound
-- file not stored yet keeps what is needed to download it (media_key sealed
-- by the keystore); download: 0 on demand, 1 pending (auto-download; the
-- webhook waits for it), 2 done, 3 failed. webhook holds the inbound
-- message's webhook event while the download is pending.
CREATE TABLE media (
  id VARCHAR(64) NOT NULL PRIMARY KEY,
  account_id BIGINT NOT NULL,
  origin TINYINT NOT NULL,
  sha256 CHAR(64) NOT NULL,
  mime_type VARCHAR(255) NOT NULL,
  size BIGINT NOT NULL DEFAULT 0,
  stored TINYINT NOT NULL DEFAULT 0,
  msg_type VARCHAR(16) NOT NULL DEFAULT '',
  direct_path VARCHAR(512) NOT NULL DEFAULT '',
  media_key VARBINARY(255) NULL,
  enc_sha256 VARBINARY(32) NULL,
  download TINYINT NOT NULL DEFAULT 0,
  attempts INT NOT NULL DEFAULT 0,
  next_attempt_at BIGINT NOT NULL DEFAULT 0,
  webhook MEDIUMBLOB NULL,
  created_at BIGINT NOT NULL,
  last_used_at BIGINT NOT NULL,
  KEY media_account_used (account_id, last_used_at),
  KEY media_sha (sha256),
  KEY media_pending (download, next_attempt_at)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

-- +goose Down
DROP TABLE media;
