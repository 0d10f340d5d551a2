-- +goose Up
-- High availability. nodes: every coreapp registers itself and heartbeats
-- (times in the database's clock, ms); chat_ok = 0 while the node cannot
-- reach the chat network (it then takes no slot). cluster_leases: the master
-- lease (the primary master balances slots). slot_leases.assigned_to: the
-- node the primary master wants a slot on; connected: the owner's session
-- is connected (for /v1/health). accounts.resharding_to: a shard change in
-- progress (every slot of the account stops until it is done).
ALTER TABLE nodes
  ADD COLUMN chat_ok TINYINT NOT NULL DEFAULT 1,
  ADD COLUMN stopped TINYINT NOT NULL DEFAULT 0;

CREATE TABLE cluster_leases (
  name VARCHAR(32) NOT NULL PRIMARY KEY,
  owner VARCHAR(128) NOT NULL,
  epoch BIGINT NOT NULL,
  expires_at BIGINT NOT NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

ALTER TABLE slot_leases
  ADD COLUMN assigned_to VARCHAR(128) NOT NULL DEFAULT '',
  ADD COLUMN connected TINYINT NOT NULL DEFAULT 0;

ALTER TABLE accounts
  ADD COLUMN resharding_to INT NOT NULL DEFAULT 0,
  ADD COLUMN resharding_since BIGINT NOT NULL DEFAULT 0;

-- +goose Down
ALTER TABLE accounts DROP COLUMN resharding_since, DROP COLUMN resharding_to;
ALTER TABLE slot_leases DROP COLUMN connected, DROP COLUMN assigned_to;
DROP TABLE cluster_leases;
ALTER TABLE nodes DROP COLUMN stopped, DROP COLUMN chat_ok;
