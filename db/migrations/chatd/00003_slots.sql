-- +goose Up
-- The highest epoch seen per connection slot (fencing).
CREATE TABLE slots (
  number VARCHAR(20) NOT NULL,
  shard INT NOT NULL,
  epoch BIGINT NOT NULL,
  PRIMARY KEY (number, shard)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

-- +goose Down
DROP TABLE slots;
