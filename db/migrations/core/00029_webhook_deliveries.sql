-- +goose Up
-- Webhooks in three levels (package coreapp/webhook): webhook_events is the
-- event, immutable once written; its next_attempt_at now says when it is to
-- be fanned out (then it is set to the largest BIGINT). topic is the event's
-- kind as endpoint filters name it, ref the message id it is about.
-- webhook_deliveries is an event's delivery to one endpoint (endpoint_id 0
-- is the number's first endpoint: webhooks.url), with its state and next
-- attempt (retry_since: when its event was written or it was last replayed,
-- the start of its dead age); webhook_attempts is the log of its last
-- attempts.
ALTER TABLE webhook_events
  ADD COLUMN topic VARCHAR(24) NOT NULL DEFAULT '',
  ADD COLUMN ref VARCHAR(128) NOT NULL DEFAULT '',
  ADD KEY webhook_events_ref (account_id, ref);

CREATE TABLE webhook_endpoints (
  id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
  account_id BIGINT NOT NULL,
  is_default TINYINT NOT NULL DEFAULT 0,
  url VARCHAR(2048) NOT NULL,
  headers BLOB NOT NULL,
  format VARCHAR(8) NOT NULL,
  events BLOB NOT NULL,
  by_tenant TINYINT NOT NULL DEFAULT 0,
  secret BLOB NULL,
  prev_secret BLOB NULL,
  prev_secret_until BIGINT NOT NULL DEFAULT 0,
  created_at BIGINT NOT NULL,
  updated_at BIGINT NOT NULL,
  KEY webhook_endpoints_account (account_id, id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE webhook_deliveries (
  id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
  event_id BIGINT NOT NULL,
  account_id BIGINT NOT NULL,
  endpoint_id BIGINT NOT NULL,
  state TINYINT NOT NULL DEFAULT 0,
  attempts INT NOT NULL DEFAULT 0,
  batch BIGINT NOT NULL DEFAULT 0,
  next_attempt_at BIGINT NOT NULL,
  created_at BIGINT NOT NULL,
  updated_at BIGINT NOT NULL,
  retry_since BIGINT NOT NULL,
  KEY webhook_deliveries_due (next_attempt_at, id),
  KEY webhook_deliveries_account (account_id, id),
  KEY webhook_deliveries_event (event_id),
  KEY webhook_deliveries_done (state, updated_at)
) ENGINE=InnoDB;

CREATE TABLE webhook_attempts (
  id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
  delivery_id BIGINT NOT NULL,
  n INT NOT NULL,
  at BIGINT NOT NULL,
  url VARCHAR(2048) NOT NULL,
  http_status INT NOT NULL,
  latency_ms INT NOT NULL,
  response VARBINARY(512) NOT NULL,
  error VARCHAR(512) NOT NULL,
  KEY webhook_attempts_delivery (delivery_id, n)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

-- +goose Down
DROP TABLE webhook_attempts;
DROP TABLE webhook_deliveries;
DROP TABLE webhook_endpoints;
ALTER TABLE webhook_events DROP KEY webhook_events_ref, DROP COLUMN topic, DROP COLUMN ref;
