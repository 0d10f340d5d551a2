-- +goose Up
-- Pending registrations and their verification codes.
CREATE TABLE registrations (
  number TEXT NOT NULL PRIMARY KEY,
  kind INTEGER NOT NULL,
  static_pub BLOB NOT NULL,
  name TEXT NOT NULL DEFAULT '',
  cert TEXT NOT NULL,
  code TEXT NOT NULL,
  attempts INTEGER NOT NULL DEFAULT 0,
  expires_at INTEGER NOT NULL,
  created_at INTEGER NOT NULL
);

-- +goose Down
DROP TABLE registrations;
