-- +goose Up
-- The sandbox's clock: how far the network's clock (the window, the
-- conversations) runs ahead of real time (one row, id 1).
CREATE TABLE sandbox_clock (
  id TINYINT NOT NULL PRIMARY KEY,
  offset_seconds BIGINT NOT NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

-- +goose Down
DROP TABLE sandbox_clock;
