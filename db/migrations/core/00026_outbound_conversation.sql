-- +goose Up
-- The conversation the network says a message opened or joined (chatd's
-- Conversation, serialized), from its ack: status webhooks carry it.
ALTER TABLE outbound_messages ADD COLUMN conversation VARBINARY(255) NULL;

-- +goose Down
ALTER TABLE outbound_messages DROP COLUMN conversation;
