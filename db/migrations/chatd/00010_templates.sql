-- +goose Up
-- Message templates of business accounts, as the network keeps them: one
-- row per name and language. record is the template as submitted (the
-- Graph API's message_templates JSON: name, language, category,
-- components), status its review state (PENDING, APPROVED, REJECTED,
-- PAUSED, DISABLED), reason why it was rejected, paused or disabled.
-- approve_at is when the sandbox approves a pending template (unix ms; 0:
-- nothing scheduled).
CREATE TABLE templates (
  id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
  account VARCHAR(20) NOT NULL,
  name VARCHAR(512) NOT NULL,
  language VARCHAR(16) NOT NULL,
  category VARCHAR(16) NOT NULL,
  status VARCHAR(16) NOT NULL,
  reason VARCHAR(256) NOT NULL DEFAULT '',
  record MEDIUMTEXT NOT NULL,
  approve_at BIGINT NOT NULL DEFAULT 0,
  created_at BIGINT NOT NULL,
  updated_at BIGINT NOT NULL,
  UNIQUE KEY templates_name (account, name, language),
  KEY templates_approve (approve_at)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

-- +goose Down
DROP TABLE templates;
