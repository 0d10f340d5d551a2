-- +goose Up
-- SHA-256 of the request a message was accepted for (recipient and
-- content as sent): a second POST with the same X-Request-Id and another
-- body is refused instead of answered with the first id.
ALTER TABLE outbound_messages ADD COLUMN request_hash BLOB NULL;

-- +goose Down
ALTER TABLE outbound_messages DROP COLUMN request_hash;
