-- +goose Up
-- Stanza ids already accepted per sender, so a resend is acked again instead
-- of being delivered twice. Purged after the retention period.
CREATE TABLE stanza_ids (
  sender VARCHAR(20) NOT NULL,
  kind TINYINT NOT NULL,
  stanza_id VARCHAR(64) NOT NULL,
  t BIGINT NOT NULL,
  PRIMARY KEY (sender, kind, stanza_id),
  KEY stanza_ids_t (t)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

-- +goose Down
DROP TABLE stanza_ids;
