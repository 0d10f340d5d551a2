-- +goose Up
-- Pending registrations and their verification codes.
CREATE TABLE registrations (
  number VARCHAR(20) NOT NULL PRIMARY KEY,
  kind TINYINT NOT NULL,
  static_pub VARBINARY(32) NOT NULL,
  name VARCHAR(256) NOT NULL DEFAULT '',
  cert TEXT NOT NULL,
  code CHAR(6) NOT NULL,
  attempts INT NOT NULL DEFAULT 0,
  expires_at BIGINT NOT NULL,
  created_at BIGINT NOT NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

-- +goose Down
DROP TABLE registrations;
