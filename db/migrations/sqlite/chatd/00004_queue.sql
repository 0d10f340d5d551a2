-- +goose Up
-- Durable per-recipient queue of serialized stanzas; a row is deleted when the
-- recipient acks it. kind: 1 message, 2 receipt, 3 notification.
CREATE TABLE queue (
  seq INTEGER PRIMARY KEY AUTOINCREMENT,
  recipient TEXT NOT NULL,
  shard INTEGER NOT NULL,
  sender TEXT NOT NULL,
  kind INTEGER NOT NULL,
  stanza_id TEXT NOT NULL,
  payload BLOB NOT NULL,
  created_at INTEGER NOT NULL,
  expires_at INTEGER NOT NULL
);
CREATE INDEX queue_recipient ON queue (recipient, shard, seq);
CREATE INDEX queue_expires ON queue (expires_at);

-- +goose Down
DROP TABLE queue;
