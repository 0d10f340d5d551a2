-- +goose Up
-- The message's type (api/message Kind: text, image, template, …), for the
-- status metrics by type.
ALTER TABLE outbound_messages ADD COLUMN kind VARCHAR(16) NOT NULL DEFAULT '';

-- +goose Down
ALTER TABLE outbound_messages DROP COLUMN kind;
