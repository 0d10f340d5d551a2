-- +goose Up
-- Credentials added when coreapp fetches a media link; secrets sealed by the
-- keystore.
CREATE TABLE media_providers (
  account_id BIGINT NOT NULL,
  name VARCHAR(64) NOT NULL,
  type VARCHAR(16) NOT NULL,
  bearer VARBINARY(1024) NULL,
  basic_username VARCHAR(255) NOT NULL DEFAULT '',
  basic_password VARBINARY(1024) NULL,
  updated_at BIGINT NOT NULL,
  PRIMARY KEY (account_id, name)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

-- +goose Down
DROP TABLE media_providers;
