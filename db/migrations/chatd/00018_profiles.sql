-- +goose Up
-- What a business publishes about itself (ProfileSet): every phone reads it
-- (ProfileGet). The photo is a media blob, kept while it is the photo.
CREATE TABLE profiles (
  number VARCHAR(20) NOT NULL PRIMARY KEY,
  about VARCHAR(512) NOT NULL DEFAULT '',
  business BLOB NULL,
  photo_path VARCHAR(128) NOT NULL DEFAULT '',
  photo_sha256 VARBINARY(32) NULL,
  photo_mime VARCHAR(32) NOT NULL DEFAULT '',
  updated_at BIGINT NOT NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

-- +goose Down
DROP TABLE profiles;
