-- +goose Up
-- Durable per-recipient queue of serialized stanzas; a row is deleted when the
-- recipient acks it. kind: 1 message, 2 receipt, 3 notification.
CREATE TABLE queue (
  seq BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
  recipient VARCHAR(20) NOT NULL,
  shard INT NOT NULL,
  sender VARCHAR(20) NOT NULL,
  kind TINYINT NOT NULL,
  stanza_id VARCHAR(64) NOT NULL,
  payload BLOB NOT NULL,
  created_at BIGINT NOT NULL,
  expires_at BIGINT NOT NULL,
  KEY queue_recipient (recipient, shard, seq),
  KEY queue_expires (expires_at)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

-- +goose Down
DROP TABLE queue;
