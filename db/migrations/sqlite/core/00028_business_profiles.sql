-- +goose Up
-- A number's business profile (package api/profile), as JSON.
CREATE TABLE business_profiles (
  account_id BIGINT NOT NULL PRIMARY KEY,
  doc BLOB NOT NULL,
  updated_at BIGINT NOT NULL
);

-- +goose Down
DROP TABLE business_profiles;
