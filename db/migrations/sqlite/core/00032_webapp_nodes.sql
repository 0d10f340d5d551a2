-- +goose Up
-- The running webapps, each beating every few seconds: the request rate
-- limits are shared among those alive (webapp/ratelimit).
CREATE TABLE webapp_nodes (
  id TEXT NOT NULL PRIMARY KEY,
  heartbeat_at INTEGER NOT NULL
);

-- +goose Down
DROP TABLE webapp_nodes;
