-- +goose Up
-- The customer-service window: when each customer last wrote to each
-- business number (the network's clock, unix seconds). A business may send
-- free-form messages for 24 hours after it.
CREATE TABLE windows (
  business VARCHAR(20) NOT NULL,
  customer VARCHAR(20) NOT NULL,
  last_inbound BIGINT NOT NULL,
  PRIMARY KEY (business, customer)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

-- +goose Down
DROP TABLE windows;
