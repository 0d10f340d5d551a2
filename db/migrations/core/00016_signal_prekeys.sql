-- +goose Up
-- One-time pre-keys (private key sealed by the keystore); deleted when used.
CREATE TABLE signal_prekeys (
  account_id BIGINT NOT NULL,
  key_id INT UNSIGNED NOT NULL,
  priv VARBINARY(255) NOT NULL,
  created_at BIGINT NOT NULL,
  PRIMARY KEY (account_id, key_id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

-- +goose Down
DROP TABLE signal_prekeys;
