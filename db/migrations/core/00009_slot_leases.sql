-- +goose Up
-- Connection slot leases; epoch is the fencing token sent to chatd at login.
CREATE TABLE slot_leases (
  account_id BIGINT NOT NULL,
  shard INT NOT NULL,
  owner VARCHAR(128) NOT NULL,
  epoch BIGINT NOT NULL,
  expires_at BIGINT NOT NULL,
  PRIMARY KEY (account_id, shard)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

-- +goose Down
DROP TABLE slot_leases;
