-- +goose Up
-- Each account's Signal identity; identity_priv is sealed by the keystore.
CREATE TABLE signal_identity (
  account_id INTEGER NOT NULL PRIMARY KEY,
  registration_id INTEGER NOT NULL,
  identity_priv BLOB NOT NULL,
  next_prekey_id INTEGER NOT NULL DEFAULT 1,
  created_at INTEGER NOT NULL
);

-- +goose Down
DROP TABLE signal_identity;
