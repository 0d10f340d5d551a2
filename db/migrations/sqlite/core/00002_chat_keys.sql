-- +goose Up
-- The account's credential on the chat network (Curve25519 static key pair).
CREATE TABLE chat_keys (
  account_id INTEGER NOT NULL PRIMARY KEY,
  static_priv BLOB NOT NULL,
  static_pub BLOB NOT NULL,
  created_at INTEGER NOT NULL
);

-- +goose Down
DROP TABLE chat_keys;
