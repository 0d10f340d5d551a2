-- +goose Up
-- A number's profile photo (POST /v1/settings/profile/photo): the JPEG or
-- PNG file as uploaded, published to the network with the profile.
CREATE TABLE business_photos (
  account_id BIGINT NOT NULL PRIMARY KEY,
  mime VARCHAR(32) NOT NULL,
  sha256 VARBINARY(32) NOT NULL,
  data MEDIUMBLOB NOT NULL,
  updated_at BIGINT NOT NULL
) ENGINE=InnoDB;

-- +goose Down
DROP TABLE business_photos;
