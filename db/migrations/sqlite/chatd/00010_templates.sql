-- +goose Up
-- Message templates of business accounts, as the network keeps them: one
-- row per name and language. record is the template as submitted (the
-- Graph API's message_templates JSON: name, language, category,
-- components), status its review state (PENDING, APPROVED, REJECTED,
-- PAUSED, DISABLED), reason why it was rejected, paused or disabled.
-- approve_at is when the sandbox approves a pending template (unix ms; 0:
-- nothing scheduled).
CREATE TABLE templates (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  account TEXT NOT NULL,
  name TEXT NOT NULL,
  language TEXT NOT NULL,
  category TEXT NOT NULL,
  status TEXT NOT NULL,
  reason TEXT NOT NULL DEFAULT '',
  record TEXT NOT NULL,
  approve_at INTEGER NOT NULL DEFAULT 0,
  created_at INTEGER NOT NULL,
  updated_at INTEGER NOT NULL
);
CREATE UNIQUE INDEX templates_name ON templates (account, name, language);
CREATE INDEX templates_approve ON templates (approve_at);

-- +goose Down
DROP TABLE templates;
