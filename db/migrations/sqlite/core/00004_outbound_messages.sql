-- +goose Up
-- Messages the business sends. status: 0 accepted, 1 sent, 2 delivered, 3 read, 9 failed.
-- payload is the stanza envelope, stored before the first send so a resend after a
-- crash uses the same bytes.
CREATE TABLE outbound_messages (
  seq INTEGER PRIMARY KEY AUTOINCREMENT,
  account_id INTEGER NOT NULL,
  id TEXT NOT NULL,
  request_id TEXT NULL,
  peer TEXT NOT NULL,
  shard INTEGER NOT NULL,
  status INTEGER NOT NULL,
  content BLOB NOT NULL,
  payload BLOB NULL,
  error_code INTEGER NOT NULL DEFAULT 0,
  created_at INTEGER NOT NULL,
  updated_at INTEGER NOT NULL
);
CREATE UNIQUE INDEX outbound_messages_id ON outbound_messages (account_id, id);
CREATE UNIQUE INDEX outbound_messages_request ON outbound_messages (account_id, request_id);
CREATE INDEX outbound_messages_pending ON outbound_messages (account_id, shard, status, seq);

-- +goose Down
DROP TABLE outbound_messages;
