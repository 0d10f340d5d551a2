-- +goose Up
-- As the MySQL migration of this number: the janitor expires queue rows by
-- age, from the lowest seq, and needs no index on expires_at.
DROP INDEX queue_expires;

-- +goose Down
CREATE INDEX queue_expires ON queue (expires_at);
