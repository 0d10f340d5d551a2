-- +goose Up
-- Each account's Signal identity; identity_priv is sealed by the keystore.
CREATE TABLE signal_identity (
  account_id BIGINT NOT NULL PRIMARY KEY,
  registration_id INT UNSIGNED NOT NULL,
  identity_priv VARBINARY(255) NOT NULL,
  next_prekey_id INT UNSIGNED NOT NULL DEFAULT 1,
  created_at BIGINT NOT NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

-- +goose Down
DROP TABLE signal_identity;
