-- +goose Up
-- The latest conversation of each category between a business and a
-- customer: opened by the business's first message in it, open for 24
-- hours (the network's clock, unix seconds). category is "service" or a
-- template category (lower case); origin "user_initiated" or
-- "business_initiated".
CREATE TABLE conversations (
  business VARCHAR(20) NOT NULL,
  customer VARCHAR(20) NOT NULL,
  category VARCHAR(16) NOT NULL,
  id CHAR(32) NOT NULL,
  origin VARCHAR(24) NOT NULL,
  opened_at BIGINT NOT NULL,
  expires_at BIGINT NOT NULL,
  PRIMARY KEY (business, customer, category)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

-- +goose Down
DROP TABLE conversations;
