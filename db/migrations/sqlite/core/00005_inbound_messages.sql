-- +goose Up
-- Messages customers sent to the business. read_at is 0 until the business marks them read.
CREATE TABLE inbound_messages (
  seq INTEGER PRIMARY KEY AUTOINCREMENT,
  account_id INTEGER NOT NULL,
  peer TEXT NOT NULL,
  id TEXT NOT NULL,
  shard INTEGER NOT NULL,
  t INTEGER NOT NULL,
  content BLOB NOT NULL,
  read_at INTEGER NOT NULL DEFAULT 0,
  created_at INTEGER NOT NULL
);
CREATE UNIQUE INDEX inbound_messages_peer_id ON inbound_messages (account_id, peer, id);
CREATE INDEX inbound_messages_id ON inbound_messages (account_id, id);

-- +goose Down
DROP TABLE inbound_messages;
