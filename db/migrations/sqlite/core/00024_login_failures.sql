-- +goose Up
-- Failed logins per user and per client address, shared by every webapp:
-- after a few failures a key is blocked until blocked_until (exponential),
-- and a successful login deletes its rows.
CREATE TABLE login_failures (
  throttle_key TEXT NOT NULL,
  failures INTEGER NOT NULL,
  blocked_until INTEGER NOT NULL,
  updated_at INTEGER NOT NULL,
  PRIMARY KEY (throttle_key)
);

-- +goose Down
DROP TABLE login_failures;
