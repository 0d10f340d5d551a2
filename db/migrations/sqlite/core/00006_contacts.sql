-- +goose Up
-- Customers the business has talked to; last_inbound_at opens the 24-hour window.
CREATE TABLE contacts (
  account_id INTEGER NOT NULL,
  wa_id TEXT NOT NULL,
  profile_name TEXT NOT NULL DEFAULT '',
  last_inbound_at INTEGER NOT NULL DEFAULT 0,
  updated_at INTEGER NOT NULL,
  PRIMARY KEY (account_id, wa_id)
);

-- +goose Down
DROP TABLE contacts;
