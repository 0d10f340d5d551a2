-- +goose Up
-- Messages customers sent to the business. read_at is 0 until the business marks them read.
CREATE TABLE inbound_messages (
  seq BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
  account_id BIGINT NOT NULL,
  peer VARCHAR(20) NOT NULL,
  id VARCHAR(64) NOT NULL,
  shard INT NOT NULL,
  t BIGINT NOT NULL,
  content BLOB NOT NULL,
  read_at BIGINT NOT NULL DEFAULT 0,
  created_at BIGINT NOT NULL,
  UNIQUE KEY inbound_messages_peer_id (account_id, peer, id),
  KEY inbound_messages_id (account_id, id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

-- +goose Down
DROP TABLE inbound_messages;
