-- +goose Up
-- Encrypted media blobs on chatd's media volume ($WA_DATA_DIR/media), named by
-- the hex SHA-256 of the blob. chatd never holds a media key: a blob is
-- ciphertext it cannot read. uploader is the first account that uploaded it;
-- uploading it again only extends expires_at. The janitor deletes expired
-- rows and their files.
CREATE TABLE media_blobs (
  hash CHAR(64) NOT NULL PRIMARY KEY,
  size BIGINT NOT NULL,
  uploader VARCHAR(20) NOT NULL,
  created_at BIGINT NOT NULL,
  expires_at BIGINT NOT NULL,
  KEY media_blobs_expires (expires_at)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

-- +goose Down
DROP TABLE media_blobs;
