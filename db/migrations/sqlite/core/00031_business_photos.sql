-- +goose Up
-- A number's profile photo (POST /v1/settings/profile/photo): the JPEG or
-- PNG file as uploaded, published to the network with the profile.
CREATE TABLE business_photos (
  account_id INTEGER NOT NULL PRIMARY KEY,
  mime TEXT NOT NULL,
  sha256 BLOB NOT NULL,
  data BLOB NOT NULL,
  updated_at INTEGER NOT NULL
);

-- +goose Down
DROP TABLE business_photos;
