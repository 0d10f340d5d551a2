-- +goose Up
-- Receipts (read) the business owes the network, sent by the slot owner and
-- deleted on chatd's ack.
CREATE TABLE outbound_receipts (
  seq BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
  account_id BIGINT NOT NULL,
  id VARCHAR(64) NOT NULL,
  peer VARCHAR(20) NOT NULL,
  shard INT NOT NULL,
  type TINYINT NOT NULL,
  message_ids TEXT NOT NULL,
  created_at BIGINT NOT NULL,
  KEY outbound_receipts_pending (account_id, shard, seq)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

-- +goose Down
DROP TABLE outbound_receipts;
