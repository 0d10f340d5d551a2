-- +goose Up
-- Claims read due deliveries in (next_attempt_at, batch, id) order, so the
-- members of a pinned on-prem POST (one batch, one next_attempt_at) are
-- contiguous and a claim's limit never splits them unnoticed
-- (coreapp/webhook, claim).
ALTER TABLE webhook_deliveries DROP KEY webhook_deliveries_due, ADD KEY webhook_deliveries_due (next_attempt_at, batch, id);

-- +goose Down
ALTER TABLE webhook_deliveries DROP KEY webhook_deliveries_due, ADD KEY webhook_deliveries_due (next_attempt_at, id);
