-- +goose Up
-- Peers' identity keys, trusted on first use.
CREATE TABLE signal_identities (
  account_id INTEGER NOT NULL,
  address TEXT NOT NULL,
  identity_key BLOB NOT NULL,
  updated_at INTEGER NOT NULL,
  PRIMARY KEY (account_id, address)
);

-- +goose Down
DROP TABLE signal_identities;
