-- +goose Up
-- Each account's published Signal identity and signed pre-key.
CREATE TABLE prekey_identities (
  number VARCHAR(20) NOT NULL PRIMARY KEY,
  registration_id INT UNSIGNED NOT NULL,
  identity_key VARBINARY(33) NOT NULL,
  signed_prekey_id INT UNSIGNED NOT NULL,
  signed_prekey VARBINARY(33) NOT NULL,
  signed_prekey_sig VARBINARY(64) NOT NULL,
  updated_at BIGINT NOT NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

-- +goose Down
DROP TABLE prekey_identities;
