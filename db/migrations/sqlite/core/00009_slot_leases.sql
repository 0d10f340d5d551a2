-- +goose Up
-- Connection slot leases; epoch is the fencing token sent to chatd at login.
CREATE TABLE slot_leases (
  account_id INTEGER NOT NULL,
  shard INTEGER NOT NULL,
  owner TEXT NOT NULL,
  epoch INTEGER NOT NULL,
  expires_at INTEGER NOT NULL,
  PRIMARY KEY (account_id, shard)
);

-- +goose Down
DROP TABLE slot_leases;
