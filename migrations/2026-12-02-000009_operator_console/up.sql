-- The figures of GET /stats, cheap at any size (SPEC §5 "Dashboard").
--
-- Raw records by (tenant, entity type, status) are counted as they change,
-- by statement-level triggers: one upsert per statement, however many rows
-- it writes. Each backend counts into its own row (shard = its pid), so
-- concurrent writers never wait on each other's counters; the janitor
-- folds the rows of backends that are gone into shard 0.
CREATE TABLE raw_record_counts (
    tenant_id         INTEGER     NOT NULL,
    entity_type       VARCHAR(50) NOT NULL,
    processing_status VARCHAR(20) NOT NULL,
    shard             INTEGER     NOT NULL,
    records           BIGINT      NOT NULL,
    PRIMARY KEY (tenant_id, entity_type, processing_status, shard)
);

-- Each trigger adds its statement's deltas to this backend's counters in
-- key order, so that two statements never lock counters in opposite orders.
CREATE OR REPLACE FUNCTION raw_record_counts_on_insert() RETURNS TRIGGER
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO raw_record_counts AS c
           (tenant_id, entity_type, processing_status, shard, records)
    SELECT tenant_id, entity_type, COALESCE(processing_status, 'pending'),
           pg_backend_pid(), count(*)
      FROM new_rows
     GROUP BY 1, 2, 3
     ORDER BY 1, 2, 3
    ON CONFLICT (tenant_id, entity_type, processing_status, shard)
    DO UPDATE SET records = c.records + EXCLUDED.records;
    RETURN NULL;
END
$$;

CREATE OR REPLACE FUNCTION raw_record_counts_on_update() RETURNS TRIGGER
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO raw_record_counts AS c
           (tenant_id, entity_type, processing_status, shard, records)
    SELECT tenant_id, entity_type, status, pg_backend_pid(), sum(delta)
      FROM (SELECT tenant_id, entity_type,
                   COALESCE(processing_status, 'pending') AS status, -1 AS delta
              FROM old_rows
            UNION ALL
            SELECT tenant_id, entity_type,
                   COALESCE(processing_status, 'pending'), 1
              FROM new_rows) AS changes
     GROUP BY 1, 2, 3
    HAVING sum(delta) <> 0
     ORDER BY 1, 2, 3
    ON CONFLICT (tenant_id, entity_type, processing_status, shard)
    DO UPDATE SET records = c.records + EXCLUDED.records;
    RETURN NULL;
END
$$;

CREATE OR REPLACE FUNCTION raw_record_counts_on_delete() RETURNS TRIGGER
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO raw_record_counts AS c
           (tenant_id, entity_type, processing_status, shard, records)
    SELECT tenant_id, entity_type, COALESCE(processing_status, 'pending'),
           pg_backend_pid(), -count(*)
      FROM old_rows
     GROUP BY 1, 2, 3
     ORDER BY 1, 2, 3
    ON CONFLICT (tenant_id, entity_type, processing_status, shard)
    DO UPDATE SET records = c.records + EXCLUDED.records;
    RETURN NULL;
END
$$;

CREATE OR REPLACE FUNCTION raw_record_counts_on_truncate() RETURNS TRIGGER
LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM raw_record_counts;
    RETURN NULL;
END
$$;

-- No write may slip between the count of what is there and the first
-- trigger: the table is held against writes for the rest of the migration.
LOCK TABLE raw_extraction_data IN SHARE MODE;

CREATE TRIGGER raw_record_counts_insert
    AFTER INSERT ON raw_extraction_data
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION raw_record_counts_on_insert();
CREATE TRIGGER raw_record_counts_update
    AFTER UPDATE ON raw_extraction_data
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION raw_record_counts_on_update();
CREATE TRIGGER raw_record_counts_delete
    AFTER DELETE ON raw_extraction_data
    REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION raw_record_counts_on_delete();

CREATE TRIGGER raw_record_counts_truncate
    AFTER TRUNCATE ON raw_extraction_data
    FOR EACH STATEMENT EXECUTE FUNCTION raw_record_counts_on_truncate();

INSERT INTO raw_record_counts
SELECT tenant_id, entity_type, COALESCE(processing_status, 'pending'), 0, count(*)
  FROM raw_extraction_data
 GROUP BY 1, 2, 3;

-- Jobs by type and status: an index-only count.
CREATE INDEX idx_etl_queue_tenant_type_status ON etl_job_queue (tenant_id, job_type, status);

-- Failures by code: only failed records are in this index, so the records
-- that flow never touch it.
CREATE INDEX idx_raw_data_tenant_failed ON raw_extraction_data (tenant_id, entity_type)
    WHERE processing_status = 'failed';

-- Rows loaded per minute over the last hour.
CREATE INDEX idx_work_items_tenant_loaded_at ON work_items (tenant_id, loaded_at);
CREATE INDEX idx_pull_requests_tenant_loaded_at ON pull_requests (tenant_id, loaded_at);
