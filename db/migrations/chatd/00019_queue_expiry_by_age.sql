-- +goose Up
-- The janitor expires queue rows by age (created_at and the queue TTL in
-- force), reading from the lowest seq: the queue has a single writer, so
-- seq order is the order rows were queued in. The index on expires_at
-- cost an index entry per insert and per delete of every stanza
-- (docs/performance.md); expires_at stays, written as before, for a reader
-- of the table, and nothing reads it.
ALTER TABLE queue DROP KEY queue_expires;

-- +goose Down
ALTER TABLE queue ADD KEY queue_expires (expires_at);
