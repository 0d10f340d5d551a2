-- +goose Up
-- API users (webapp). password_hash is bcrypt.
CREATE TABLE users (
  username TEXT NOT NULL PRIMARY KEY,
  password_hash TEXT NOT NULL,
  role TEXT NOT NULL,
  password_change_required INTEGER NOT NULL DEFAULT 0,
  created_at INTEGER NOT NULL,
  updated_at INTEGER NOT NULL
);

-- +goose Down
DROP TABLE users;
