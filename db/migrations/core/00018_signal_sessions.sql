-- +goose Up
-- Signal sessions per peer (record sealed by the keystore).
CREATE TABLE signal_sessions (
  account_id BIGINT NOT NULL,
  address VARCHAR(64) NOT NULL,
  record MEDIUMBLOB NOT NULL,
  updated_at BIGINT NOT NULL,
  PRIMARY KEY (account_id, address)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

-- +goose Down
DROP TABLE signal_sessions;
