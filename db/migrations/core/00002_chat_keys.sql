-- +goose Up
-- The account's credential on the chat network (Curve25519 static key pair).
CREATE TABLE chat_keys (
  account_id BIGINT NOT NULL PRIMARY KEY,
  static_priv VARBINARY(255) NOT NULL,
  static_pub VARBINARY(32) NOT NULL,
  created_at BIGINT NOT NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

-- +goose Down
DROP TABLE chat_keys;
