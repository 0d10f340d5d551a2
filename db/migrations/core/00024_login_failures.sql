-- +goose Up
-- Failed logins per user and per client address, shared by every webapp:
-- after a few failures a key is blocked until blocked_until (exponential),
-- and a successful login deletes its rows.
CREATE TABLE login_failures (
  throttle_key VARCHAR(191) NOT NULL,
  failures INT NOT NULL,
  blocked_until BIGINT NOT NULL,
  updated_at BIGINT NOT NULL,
  PRIMARY KEY (throttle_key)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

-- +goose Down
DROP TABLE login_failures;
