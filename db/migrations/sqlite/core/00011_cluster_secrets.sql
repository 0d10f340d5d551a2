-- +goose Up
-- Deployment-wide secrets created once by whichever process needs them first
-- (TLS certificates, the webapp→coreapp call token).
CREATE TABLE cluster_secrets (
  name TEXT NOT NULL PRIMARY KEY,
  value BLOB NOT NULL,
  created_at INTEGER NOT NULL
);

-- +goose Down
DROP TABLE cluster_secrets;
