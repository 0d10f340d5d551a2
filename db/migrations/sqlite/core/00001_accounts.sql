-- +goose Up
-- One row per business number (tenant). state: pending (code requested) | verified.
CREATE TABLE accounts (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  wa_id TEXT NOT NULL,
  cc TEXT NOT NULL,
  phone_number TEXT NOT NULL,
  state TEXT NOT NULL,
  vname TEXT NOT NULL DEFAULT '',
  cert TEXT NOT NULL,
  shards INTEGER NOT NULL DEFAULT 1,
  created_at INTEGER NOT NULL,
  verified_at INTEGER NOT NULL DEFAULT 0
);
CREATE UNIQUE INDEX accounts_wa_id ON accounts (wa_id);

-- +goose Down
DROP TABLE accounts;
