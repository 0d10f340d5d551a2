-- +goose Up
-- Signed pre-keys (private key sealed by the keystore).
CREATE TABLE signal_signed_prekeys (
  account_id BIGINT NOT NULL,
  key_id INT UNSIGNED NOT NULL,
  priv VARBINARY(255) NOT NULL,
  signature VARBINARY(64) NOT NULL,
  ts BIGINT NOT NULL,
  PRIMARY KEY (account_id, key_id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

-- +goose Down
DROP TABLE signal_signed_prekeys;
