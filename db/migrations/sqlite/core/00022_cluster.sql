-- +goose Up
-- High availability. nodes: every coreapp registers itself and heartbeats
-- (times in the database's clock, ms); chat_ok = 0 while the node cannot
-- reach the chat network (it then takes no slot). cluster_leases: the master
-- lease (the primary master balances slots). slot_leases.assigned_to: the
-- node the primary master wants a slot on; connected: the owner's session
-- is connected (for /v1/health). accounts.resharding_to: a shard change in
-- progress (every slot of the account stops until it is done).
ALTER TABLE nodes ADD COLUMN chat_ok INTEGER NOT NULL DEFAULT 1;
ALTER TABLE nodes ADD COLUMN stopped INTEGER NOT NULL DEFAULT 0;

CREATE TABLE cluster_leases (
  name TEXT NOT NULL PRIMARY KEY,
  owner TEXT NOT NULL,
  epoch INTEGER NOT NULL,
  expires_at INTEGER NOT NULL
);

ALTER TABLE slot_leases ADD COLUMN assigned_to TEXT NOT NULL DEFAULT '';
ALTER TABLE slot_leases ADD COLUMN connected INTEGER NOT NULL DEFAULT 0;

ALTER TABLE accounts ADD COLUMN resharding_to INTEGER NOT NULL DEFAULT 0;
ALTER TABLE accounts ADD COLUMN resharding_since INTEGER NOT NULL DEFAULT 0;

-- +goose Down
ALTER TABLE accounts DROP COLUMN resharding_since;
ALTER TABLE accounts DROP COLUMN resharding_to;
ALTER TABLE slot_leases DROP COLUMN connected;
ALTER TABLE slot_leases DROP COLUMN assigned_to;
DROP TABLE cluster_leases;
ALTER TABLE nodes DROP COLUMN stopped;
ALTER TABLE nodes DROP COLUMN chat_ok;
