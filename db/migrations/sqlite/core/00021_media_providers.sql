-- +goose Up
-- Credentials added when coreapp fetches a media link; secrets sealed by the
-- keystore.
CREATE TABLE media_providers (
  account_id INTEGER NOT NULL,
  name TEXT NOT NULL,
  type TEXT NOT NULL,
  bearer BLOB NULL,
  basic_username TEXT NOT NULL DEFAULT '',
  basic_password BLOB NULL,
  updated_at INTEGER NOT NULL,
  PRIMARY KEY (account_id, name)
);

-- +goose Down
DROP TABLE media_providers;
