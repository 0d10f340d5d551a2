-- +goose Up
-- Each account's published Signal identity and signed pre-key.
CREATE TABLE prekey_identities (
  number TEXT NOT NULL PRIMARY KEY,
  registration_id INTEGER NOT NULL,
  identity_key BLOB NOT NULL,
  signed_prekey_id INTEGER NOT NULL,
  signed_prekey BLOB NOT NULL,
  signed_prekey_sig BLOB NOT NULL,
  updated_at INTEGER NOT NULL
);

-- +goose Down
DROP TABLE prekey_identities;
