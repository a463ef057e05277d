-- First answers of requests sent with an `Idempotency-Key` header, so that a
-- repeat (same tenant, same route, same key) gets the same answer and stores
-- nothing new. The row is inserted before the work, in the same transaction,
-- so a concurrent repeat waits on its primary key until the first commits.
CREATE TABLE idempotency_keys (
    tenant_id   INTEGER NOT NULL REFERENCES tenants (id),
    route       VARCHAR(100) NOT NULL,
    key         VARCHAR(255) NOT NULL,
    status_code SMALLINT,
    response    JSONB,
    created_at  TIMESTAMP NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, route, key)
);

CREATE INDEX idx_idempotency_keys_created_at ON idempotency_keys (created_at);
