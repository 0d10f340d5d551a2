-- +goose Up
-- Webhooks in three levels: see the MySQL migration of the same number.
ALTER TABLE webhook_events ADD COLUMN topic TEXT NOT NULL DEFAULT '';
ALTER TABLE webhook_events ADD COLUMN ref TEXT NOT NULL DEFAULT '';
CREATE INDEX webhook_events_ref ON webhook_events (account_id, ref);

CREATE TABLE webhook_endpoints (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  account_id INTEGER NOT NULL,
  is_default INTEGER NOT NULL DEFAULT 0,
  url TEXT NOT NULL,
  headers BLOB NOT NULL,
  format TEXT NOT NULL,
  events BLOB NOT NULL,
  by_tenant INTEGER NOT NULL DEFAULT 0,
  secret BLOB NULL,
  prev_secret BLOB NULL,
  prev_secret_until INTEGER NOT NULL DEFAULT 0,
  created_at INTEGER NOT NULL,
  updated_at INTEGER NOT NULL
);
CREATE INDEX webhook_endpoints_account ON webhook_endpoints (account_id, id);

CREATE TABLE webhook_deliveries (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  event_id INTEGER NOT NULL,
  account_id INTEGER NOT NULL,
  endpoint_id INTEGER NOT NULL,
  state INTEGER NOT NULL DEFAULT 0,
  attempts INTEGER NOT NULL DEFAULT 0,
  batch INTEGER NOT NULL DEFAULT 0,
  next_attempt_at INTEGER NOT NULL,
  created_at INTEGER NOT NULL,
  updated_at INTEGER NOT NULL,
  retry_since INTEGER NOT NULL
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (next_attempt_at, id);
CREATE INDEX webhook_deliveries_account ON webhook_deliveries (account_id, id);
CREATE INDEX webhook_deliveries_event ON webhook_deliveries (event_id);
CREATE INDEX webhook_deliveries_done ON webhook_deliveries (state, updated_at);

CREATE TABLE webhook_attempts (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  delivery_id INTEGER NOT NULL,
  n INTEGER NOT NULL,
  at INTEGER NOT NULL,
  url TEXT NOT NULL,
  http_status INTEGER NOT NULL,
  latency_ms INTEGER NOT NULL,
  response BLOB NOT NULL,
  error TEXT NOT NULL
);
CREATE INDEX webhook_attempts_delivery ON webhook_attempts (delivery_id, n);

-- +goose Down
DROP TABLE webhook_attempts;
DROP TABLE webhook_deliveries;
DROP TABLE webhook_endpoints;
DROP INDEX webhook_events_ref;
ALTER TABLE webhook_events DROP COLUMN topic;
ALTER TABLE webhook_events DROP COLUMN ref;
