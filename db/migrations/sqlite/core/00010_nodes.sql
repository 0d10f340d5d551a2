-- +goose Up
-- coreapp nodes and their heartbeats.
CREATE TABLE nodes (
  id TEXT NOT NULL PRIMARY KEY,
  hostname TEXT NOT NULL,
  grpc_addr TEXT NOT NULL,
  started_at INTEGER NOT NULL,
  heartbeat_at INTEGER NOT NULL
);

-- +goose Down
DROP TABLE nodes;
