-- +goose Up
-- Per-number API keys (D360-API-KEY), stored as SHA-256 of the key.
CREATE TABLE api_keys (
  prefix TEXT NOT NULL PRIMARY KEY,
  hash BLOB NOT NULL,
  wa_id TEXT NOT NULL,
  created_by TEXT NOT NULL,
  created_at INTEGER NOT NULL
);
CREATE INDEX api_keys_wa_id ON api_keys (wa_id);

-- +goose Down
DROP TABLE api_keys;
