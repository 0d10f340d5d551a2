-- +goose Up
-- The highest epoch seen per connection slot (fencing).
CREATE TABLE slots (
  number TEXT NOT NULL,
  shard INTEGER NOT NULL,
  epoch INTEGER NOT NULL,
  PRIMARY KEY (number, shard)
);

-- +goose Down
DROP TABLE slots;
