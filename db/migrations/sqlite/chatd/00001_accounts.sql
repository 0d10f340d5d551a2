-- +goose Up
-- Accounts on the network. kind: 1 business, 2 consumer. static_pub is the
-- account's credential.
CREATE TABLE accounts (
  number TEXT NOT NULL PRIMARY KEY,
  kind INTEGER NOT NULL,
  static_pub BLOB NOT NULL,
  name TEXT NOT NULL DEFAULT '',
  cert TEXT NOT NULL,
  shards INTEGER NOT NULL DEFAULT 1,
  created_at INTEGER NOT NULL,
  updated_at INTEGER NOT NULL
);

-- +goose Down
DROP TABLE accounts;
