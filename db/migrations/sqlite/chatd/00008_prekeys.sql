-- +goose Up
-- One-time pre-keys; a row is deleted when it is handed out.
CREATE TABLE prekeys (
  number TEXT NOT NULL,
  key_id INTEGER NOT NULL,
  public_key BLOB NOT NULL,
  PRIMARY KEY (number, key_id)
);

-- +goose Down
DROP TABLE prekeys;
