-- Idempotency keys past their window are forgotten by age.
CREATE INDEX idempotency_keys_created_at ON idempotency_keys (created_at);
