-- +goose Up
-- The webhook outbox. next_attempt_at doubles as the claim lease: a node that
-- claims a row pushes it into the future until it delivers (delete) or fails
-- (reschedule with backoff).
CREATE TABLE webhook_events (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  account_id INTEGER NOT NULL,
  kind TEXT NOT NULL,
  payload BLOB NOT NULL,
  created_at INTEGER NOT NULL,
  next_attempt_at INTEGER NOT NULL,
  attempts INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX webhook_events_due ON webhook_events (next_attempt_at, id);

-- +goose Down
DROP TABLE webhook_events;
