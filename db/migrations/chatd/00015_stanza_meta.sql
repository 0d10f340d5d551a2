-- +goose Up
-- What the ack of an accepted message carried besides its time (the
-- conversation, serialized): a resend is acked with the same.
ALTER TABLE stanza_ids ADD COLUMN meta VARBINARY(255) NULL;

-- +goose Down
ALTER TABLE stanza_ids DROP COLUMN meta;
