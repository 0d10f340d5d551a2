-- +goose Up
-- The webhook outbox. next_attempt_at doubles as the claim lease: a node that
-- claims a row pushes it into the future until it delivers (delete) or fails
-- (reschedule with backoff).
CREATE TABLE webhook_events (
  id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
  account_id BIGINT NOT NULL,
  kind VARCHAR(16) NOT NULL,
  payload MEDIUMBLOB NOT NULL,
  created_at BIGINT NOT NULL,
  next_attempt_at BIGINT NOT NULL,
  attempts INT NOT NULL DEFAULT 0,
  KEY webhook_events_due (next_attempt_at, id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

-- +goose Down
DROP TABLE webhook_events;
