-- +goose Up
-- One-time pre-keys (private key sealed by the keystore); deleted when used.
CREATE TABLE signal_prekeys (
  account_id INTEGER NOT NULL,
  key_id INTEGER NOT NULL,
  priv BLOB NOT NULL,
  created_at INTEGER NOT NULL,
  PRIMARY KEY (account_id, key_id)
);

-- +goose Down
DROP TABLE signal_prekeys;
