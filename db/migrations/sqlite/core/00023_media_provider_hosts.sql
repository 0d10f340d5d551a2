-- +goose Up
-- The hosts a provider's credentials may be sent to (a JSON array of names,
-- "*.domain" wildcards, optionally with ":port"). Providers stored before
-- this column existed have none, and refuse every link until an admin sets
-- their hosts again.
ALTER TABLE media_providers ADD COLUMN hosts TEXT NULL;

-- +goose Down
ALTER TABLE media_providers DROP COLUMN hosts;
