-- +goose Up
-- Per-number API keys (D360-API-KEY), stored as SHA-256 of the key.
CREATE TABLE api_keys (
  prefix VARCHAR(16) NOT NULL PRIMARY KEY,
  hash BINARY(32) NOT NULL,
  wa_id VARCHAR(20) NOT NULL,
  created_by VARCHAR(32) NOT NULL,
  created_at BIGINT NOT NULL,
  KEY api_keys_wa_id (wa_id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

-- +goose Down
DROP TABLE api_keys;
