-- The seed design's two tables, column for column (SPEC §2.1). Their
-- nullability and defaults are part of the contract: do not tighten them here,
-- add constraints in later migrations only where the contract allows.
CREATE TABLE raw_extraction_data (
    id                  SERIAL PRIMARY KEY,
    tenant_id           INTEGER NOT NULL REFERENCES tenants (id),
    integration_id      INTEGER NOT NULL REFERENCES integrations (id),
    entity_type         VARCHAR(50) NOT NULL,
    external_id         VARCHAR(255),
    raw_data            JSONB NOT NULL,
    extraction_metadata JSONB,
    processing_status   VARCHAR(20) DEFAULT 'pending',
    error_details       JSONB,
    created_at          TIMESTAMP DEFAULT now(),
    processed_at        TIMESTAMP,
    CONSTRAINT raw_extraction_data_status_known CHECK (
        processing_status IN ('pending', 'processing', 'completed', 'failed', 'skipped')
    )
);

CREATE INDEX idx_raw_data_tenant_type ON raw_extraction_data (tenant_id, entity_type);
CREATE INDEX idx_raw_data_status ON raw_extraction_data (processing_status);
CREATE INDEX idx_raw_data_external_id ON raw_extraction_data (external_id);

CREATE TABLE etl_job_queue (
    id            SERIAL PRIMARY KEY,
    tenant_id     INTEGER NOT NULL REFERENCES tenants (id),
    job_type      VARCHAR(50) NOT NULL,
    entity_type   VARCHAR(50) NOT NULL,
    payload       JSONB NOT NULL,
    priority      INTEGER DEFAULT 5,
    status        VARCHAR(20) DEFAULT 'pending',
    scheduled_at  TIMESTAMP DEFAULT now(),
    started_at    TIMESTAMP,
    completed_at  TIMESTAMP,
    error_details JSONB,
    retry_count   INTEGER DEFAULT 0,
    max_retries   INTEGER DEFAULT 3,
    CONSTRAINT etl_job_queue_status_known CHECK (
        status IN ('pending', 'queued', 'running', 'completed', 'failed', 'cancelled')
    ),
    CONSTRAINT etl_job_queue_type_known CHECK (job_type IN ('extract', 'transform', 'load')),
    CONSTRAINT etl_job_queue_priority_range CHECK (priority BETWEEN 1 AND 10)
);

CREATE INDEX idx_etl_queue_tenant_status ON etl_job_queue (tenant_id, status);
CREATE INDEX idx_etl_queue_priority ON etl_job_queue (priority, scheduled_at);
CREATE INDEX idx_etl_queue_type ON etl_job_queue (job_type, entity_type);
