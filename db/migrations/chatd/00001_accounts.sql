-- +goose Up
-- Accounts on the network. kind: 1 business, 2 consumer. static_pub is the
-- account's credential.
CREATE TABLE accounts (
  number VARCHAR(20) NOT NULL PRIMARY KEY,
  kind TINYINT NOT NULL,
  static_pub VARBINARY(32) NOT NULL,
  name VARCHAR(256) NOT NULL DEFAULT '',
  cert TEXT NOT NULL,
  shards INT NOT NULL DEFAULT 1,
  created_at BIGINT NOT NULL,
  updated_at BIGINT NOT NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

-- +goose Down
DROP TABLE accounts;
