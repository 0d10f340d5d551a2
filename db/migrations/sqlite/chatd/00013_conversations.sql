-- +goose Up
-- The latest conversation of each category between a business and a
-- customer: opened by the business's first message in it, open for 24
-- hours (the network's clock, unix seconds). category is "service" or a
-- template category (lower case); origin "user_initiated" or
-- "business_initiated".
CREATE TABLE conversations (
  business TEXT NOT NULL,
  customer TEXT NOT NULL,
  category TEXT NOT NULL,
  id TEXT NOT NULL,
  origin TEXT NOT NULL,
  opened_at INTEGER NOT NULL,
  expires_at INTEGER NOT NULL,
  PRIMARY KEY (business, customer, category)
);

-- +goose Down
DROP TABLE conversations;
