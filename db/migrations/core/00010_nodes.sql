-- +goose Up
-- coreapp nodes and their heartbeats.
CREATE TABLE nodes (
  id VARCHAR(64) NOT NULL PRIMARY KEY,
  hostname VARCHAR(255) NOT NULL,
  grpc_addr VARCHAR(255) NOT NULL,
  started_at BIGINT NOT NULL,
  heartbeat_at BIGINT NOT NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

-- +goose Down
DROP TABLE nodes;
