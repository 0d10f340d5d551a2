-- +goose Up
-- The customer-service window: when each customer last wrote to each
-- business number (the network's clock, unix seconds). A business may send
-- free-form messages for 24 hours after it.
CREATE TABLE windows (
  business TEXT NOT NULL,
  customer TEXT NOT NULL,
  last_inbound INTEGER NOT NULL,
  PRIMARY KEY (business, customer)
);

-- +goose Down
DROP TABLE windows;
