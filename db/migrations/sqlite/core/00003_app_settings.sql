-- +goose Up
-- Application settings as the on-prem JSON object; account_id 0 holds the
-- deployment defaults that new accounts start from.
CREATE TABLE app_settings (
  account_id INTEGER NOT NULL PRIMARY KEY,
  doc TEXT NOT NULL,
  updated_at INTEGER NOT NULL
);

-- +goose Down
DROP TABLE app_settings;
