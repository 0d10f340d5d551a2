-- +goose Up
-- Receipts (read) the business owes the network, sent by the slot owner and
-- deleted on chatd's ack.
CREATE TABLE outbound_receipts (
  seq INTEGER PRIMARY KEY AUTOINCREMENT,
  account_id INTEGER NOT NULL,
  id TEXT NOT NULL,
  peer TEXT NOT NULL,
  shard INTEGER NOT NULL,
  type INTEGER NOT NULL,
  message_ids TEXT NOT NULL,
  created_at INTEGER NOT NULL
);
CREATE INDEX outbound_receipts_pending ON outbound_receipts (account_id, shard, seq);

-- +goose Down
DROP TABLE outbound_receipts;
