-- +goose Up
-- Bearer tokens, stored as SHA-256 of the token.
CREATE TABLE tokens (
  hash BLOB NOT NULL PRIMARY KEY,
  username TEXT NOT NULL,
  expires_at INTEGER NOT NULL,
  created_at INTEGER NOT NULL
);
CREATE INDEX tokens_username ON tokens (username);

-- +goose Down
DROP TABLE tokens;
