-- +goose Up
-- Bearer tokens, stored as SHA-256 of the token.
CREATE TABLE tokens (
  hash BINARY(32) NOT NULL PRIMARY KEY,
  username VARCHAR(32) NOT NULL,
  expires_at BIGINT NOT NULL,
  created_at BIGINT NOT NULL,
  KEY tokens_username (username)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

-- +goose Down
DROP TABLE tokens;
