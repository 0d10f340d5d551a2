-- +goose Up
-- Deployment-wide secrets created once by whichever process needs them first
-- (TLS certificates, the webapp→coreapp call token).
CREATE TABLE cluster_secrets (
  name VARCHAR(64) NOT NULL PRIMARY KEY,
  value BLOB NOT NULL,
  created_at BIGINT NOT NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

-- +goose Down
DROP TABLE cluster_secrets;
