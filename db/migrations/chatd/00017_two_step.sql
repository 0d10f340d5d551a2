-- +goose Up
-- Two-step verification: the bcrypt hash of the account's 6-digit PIN
-- (NULL: off), and the wrong PINs given since the last right one, with the
-- time of the latest (a registration from another key needs the PIN).
ALTER TABLE accounts ADD COLUMN pin_hash VARBINARY(128) NULL;
ALTER TABLE accounts ADD COLUMN pin_failures INT NOT NULL DEFAULT 0;
ALTER TABLE accounts ADD COLUMN pin_failed_at BIGINT NOT NULL DEFAULT 0;

-- +goose Down
ALTER TABLE accounts DROP COLUMN pin_failed_at;
ALTER TABLE accounts DROP COLUMN pin_failures;
ALTER TABLE accounts DROP COLUMN pin_hash;
