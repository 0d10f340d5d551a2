-- +goose Up
-- Stanza ids already accepted per sender, so a resend is acked again instead
-- of being delivered twice. Purged after the retention period.
CREATE TABLE stanza_ids (
  sender TEXT NOT NULL,
  kind INTEGER NOT NULL,
  stanza_id TEXT NOT NULL,
  t INTEGER NOT NULL,
  PRIMARY KEY (sender, kind, stanza_id)
);
CREATE INDEX stanza_ids_t ON stanza_ids (t);

-- +goose Down
DROP TABLE stanza_ids;
