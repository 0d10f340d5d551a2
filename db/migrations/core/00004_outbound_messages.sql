-- +goose Up
-- Messages the business sends. status: 0 accepted, 1 sent, 2 delivered, 3 read, 9 failed.
-- payload is the stanza envelope, stored before the first send so a resend after a
-- crash uses the same bytes.
CREATE TABLE outbound_messages (
  seq BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
  account_id BIGINT NOT NULL,
  id VARCHAR(64) NOT NULL,
  request_id VARCHAR(64) NULL,
  peer VARCHAR(20) NOT NULL,
  shard INT NOT NULL,
  status TINYINT NOT NULL,
  content BLOB NOT NULL,
  payload BLOB NULL,
  error_code INT NOT NULL DEFAULT 0,
  created_at BIGINT NOT NULL,
  updated_at BIGINT NOT NULL,
  UNIQUE KEY outbound_messages_id (account_id, id),
  UNIQUE KEY outbound_messages_request (account_id, request_id),
  KEY outbound_messages_pending (account_id, shard, status, seq)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

-- +goose Down
DROP TABLE outbound_messages;
