-- +goose Up
-- The running webapps, each beating every few seconds: the request rate
-- limits are shared among those alive (webapp/ratelimit).
CREATE TABLE webapp_nodes (
  id VARCHAR(64) NOT NULL PRIMARY KEY,
  heartbeat_at BIGINT NOT NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

-- +goose Down
DROP TABLE webapp_nodes;
