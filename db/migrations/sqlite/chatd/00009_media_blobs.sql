-- +goose Up
-- Encrypted media blobs on chatd's media volume ($WA_DATA_DIR/media), named by
-- the hex SHA-256 of the blob. chatd never holds a media key: a blob is
-- ciphertext it cannot read. uploader is the first account that uploaded it;
-- uploading it again only extends expires_at. The janitor deletes expired
-- rows and their files.
CREATE TABLE media_blobs (
  hash TEXT NOT NULL PRIMARY KEY,
  size INTEGER NOT NULL,
  uploader TEXT NOT NULL,
  created_at INTEGER NOT NULL,
  expires_at INTEGER NOT NULL
);
CREATE INDEX media_blobs_expires ON media_blobs (expires_at);

-- +goose Down
DROP TABLE media_blobs;
