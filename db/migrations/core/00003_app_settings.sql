-- +goose Up
-- Application settings as the on-prem JSON object; account_id 0 holds the
-- deployment defaults that new accounts start from.
CREATE TABLE app_settings (
  account_id BIGINT NOT NULL PRIMARY KEY,
  doc TEXT NOT NULL,
  updated_at BIGINT NOT NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

-- +goose Down
DROP TABLE app_settings;
