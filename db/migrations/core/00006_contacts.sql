-- +goose Up
-- Customers the business has talked to; last_inbound_at opens the 24-hour window.
CREATE TABLE contacts (
  account_id BIGINT NOT NULL,
  wa_id VARCHAR(20) NOT NULL,
  profile_name VARCHAR(256) NOT NULL DEFAULT '',
  last_inbound_at BIGINT NOT NULL DEFAULT 0,
  updated_at BIGINT NOT NULL,
  PRIMARY KEY (account_id, wa_id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

-- +goose Down
DROP TABLE contacts;
