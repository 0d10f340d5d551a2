-- +goose Up
-- When the business blocked the customer (network clock, Unix seconds; 0:
-- not blocked). A block needs a window row: only a customer who wrote in
-- the last 24 hours can be blocked.
ALTER TABLE windows ADD COLUMN blocked BIGINT NOT NULL DEFAULT 0;

-- +goose Down
ALTER TABLE windows DROP COLUMN blocked;
