-- +goose Up
-- API users (webapp). password_hash is bcrypt.
CREATE TABLE users (
  username VARCHAR(32) NOT NULL PRIMARY KEY,
  password_hash VARCHAR(255) NOT NULL,
  role VARCHAR(16) NOT NULL,
  password_change_required TINYINT NOT NULL DEFAULT 0,
  created_at BIGINT NOT NULL,
  updated_at BIGINT NOT NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

-- +goose Down
DROP TABLE users;
