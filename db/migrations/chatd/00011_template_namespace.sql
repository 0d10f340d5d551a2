-- +goose Up
-- The template namespace of a business account (on-prem template messages
-- name it), made when it is first asked for.
ALTER TABLE accounts ADD COLUMN template_namespace VARCHAR(64) NOT NULL DEFAULT '';

-- +goose Down
ALTER TABLE accounts DROP COLUMN template_namespace;
