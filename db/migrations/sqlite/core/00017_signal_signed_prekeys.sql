-- +goose Up
-- Signed pre-keys (private key sealed by the keystore).
CREATE TABLE signal_signed_prekeys (
  account_id INTEGER NOT NULL,
  key_id INTEGER NOT NULL,
  priv BLOB NOT NULL,
  signature BLOB NOT NULL,
  ts INTEGER NOT NULL,
  PRIMARY KEY (account_id, key_id)
);

-- +goose Down
DROP TABLE signal_signed_prekeys;
