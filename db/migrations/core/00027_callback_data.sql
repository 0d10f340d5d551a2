-- +goose Up
-- The Cloud API's biz_opaque_callback_data of a message (at most 512
-- characters): echoed in its status webhooks.
ALTER TABLE outbound_messages ADD COLUMN callback_data VARCHAR(512) NULL;

-- +goose Down
ALTER TABLE outbound_messages DROP COLUMN callback_data;
