-- +goose Up
-- The sandbox's clock: how far the network's clock (the window, the
-- conversations) runs ahead of real time (one row, id 1).
CREATE TABLE sandbox_clock (
  id INTEGER NOT NULL PRIMARY KEY,
  offset_seconds INTEGER NOT NULL
);

-- +goose Down
DROP TABLE sandbox_clock;
