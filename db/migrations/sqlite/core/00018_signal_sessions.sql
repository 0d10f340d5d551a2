-- +goose Up
-- Signal sessions per peer (record sealed by the keystore).
CREATE TABLE signal_sessions (
  account_id INTEGER NOT NULL,
  address TEXT NOT NULL,
  record BLOB NOT NULL,
  updated_at INTEGER NOT NULL,
  PRIMARY KEY (account_id, address)
);

-- +goose Down
DROP TABLE signal_sessions;
