-- +goose Up
-- What a business publishes about itself (ProfileSet): every phone reads it
-- (ProfileGet). The photo is a media blob, kept while it is the photo.
CREATE TABLE profiles (
  number TEXT NOT NULL PRIMARY KEY,
  about TEXT NOT NULL DEFAULT '',
  business BLOB NULL,
  photo_path TEXT NOT NULL DEFAULT '',
  photo_sha256 BLOB NULL,
  photo_mime TEXT NOT NULL DEFAULT '',
  updated_at INTEGER NOT NULL
);

-- +goose Down
DROP TABLE profiles;
