-- +goose Up
-- Peers' identity keys, trusted on first use.
CREATE TABLE signal_identities (
  account_id BIGINT NOT NULL,
  address VARCHAR(64) NOT NULL,
  identity_key VARBINARY(33) NOT NULL,
  updated_at BIGINT NOT NULL,
  PRIMARY KEY (account_id, address)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

-- +goose Down
DROP TABLE signal_identities;
