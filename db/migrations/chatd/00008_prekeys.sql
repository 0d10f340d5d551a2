-- +goose Up
-- One-time pre-keys; a row is deleted when it is handed out.
CREATE TABLE prekeys (
  number VARCHAR(20) NOT NULL,
  key_id INT UNSIGNED NOT NULL,
  public_key VARBINARY(33) NOT NULL,
  PRIMARY KEY (number, key_id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

-- +goose Down
DROP TABLE prekeys;
