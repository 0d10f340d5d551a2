-- +goose Up
-- One row per business number (tenant). state: pending (code requested) | verified.
CREATE TABLE accounts (
  id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
  wa_id VARCHAR(20) NOT NULL,
  cc VARCHAR(4) NOT NULL,
  phone_number VARCHAR(20) NOT NULL,
  state VARCHAR(16) NOT NULL,
  vname VARCHAR(256) NOT NULL DEFAULT '',
  cert TEXT NOT NULL,
  shards INT NOT NULL DEFAULT 1,
  created_at BIGINT NOT NULL,
  verified_at BIGINT NOT NULL DEFAULT 0,
  UNIQUE KEY accounts_wa_id (wa_id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

-- +goose Down
DROP TABLE accounts;
