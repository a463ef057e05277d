-- The figures of GET /stats, cheap at any size (SPEC §5 "Dashboard").
--
-- Counts that would otherwise need a scan of every row are kept as rows
-- change, by statement-level triggers: one upsert per statement, however
-- many rows it writes. Each backend counts into its own rows (shard = its
-- pid), so concurrent writers never wait on each other's counters; the
-- janitor folds the rows of backends that are gone into shard 0, which no
-- live backend writes. Each trigger adds its deltas in key order, so two
-- statements never lock counters in opposite orders.
--
-- raw_record_counts: raw records by tenant, entity type, status and, for
-- failed ones, error_details.code ('' otherwise).
CREATE TABLE raw_record_counts (
    tenant_id         INTEGER      NOT NULL,
    entity_type       VARCHAR(50)  NOT NULL,
    processing_status VARCHAR(20)  NOT NULL,
    error_code        VARCHAR(100) NOT NULL,
    shard             INTEGER      NOT NULL,
    records           BIGINT       NOT NULL,
    PRIMARY KEY (tenant_id, entity_type, processing_status, error_code, shard)
);

-- job_counts: jobs by tenant, type and status.
CREATE TABLE job_counts (
    tenant_id INTEGER     NOT NULL,
    job_type  VARCHAR(50) NOT NULL,
    status    VARCHAR(20) NOT NULL,
    shard     INTEGER     NOT NULL,
    jobs      BIGINT      NOT NULL,
    PRIMARY KEY (tenant_id, job_type, status, shard)
);

-- loaded_minutes: rows of a final table by tenant and the minute their
-- loaded_at falls in (minutes older than two hours are dropped).
CREATE TABLE loaded_minutes (
    final_table VARCHAR(20) NOT NULL,
    tenant_id   INTEGER     NOT NULL,
    minute      TIMESTAMP   NOT NULL,
    shard       INTEGER     NOT NULL,
    rows        BIGINT      NOT NULL,
    PRIMARY KEY (final_table, tenant_id, minute, shard)
);
CREATE INDEX idx_loaded_minutes_tenant ON loaded_minutes (tenant_id, minute);

-- One trigger function per counter table.
CREATE OR REPLACE FUNCTION raw_record_counts_on_change() RETURNS TRIGGER
LANGUAGE plpgsql AS $$
BEGIN
    -- Static statements, one per operation, so that their plans are cached.
    IF TG_OP = 'INSERT' THEN
        INSERT INTO raw_record_counts AS c (tenant_id, entity_type, processing_status, error_code, shard, records)
        SELECT tenant_id, entity_type, processing_status, error_code, pg_backend_pid(), sum(delta)
          FROM (SELECT tenant_id, entity_type, COALESCE(processing_status, 'pending') AS processing_status,
                       CASE WHEN processing_status = 'failed'
                            THEN left(COALESCE(error_details->>'code', ''), 100) ELSE '' END AS error_code, 1 AS delta FROM new_rows) AS d
         GROUP BY 1, 2, 3, 4
        HAVING sum(delta) <> 0
         ORDER BY 1, 2, 3, 4
        ON CONFLICT (tenant_id, entity_type, processing_status, error_code, shard)
        DO UPDATE SET records = c.records + EXCLUDED.records;
    ELSIF TG_OP = 'DELETE' THEN
        INSERT INTO raw_record_counts AS c (tenant_id, entity_type, processing_status, error_code, shard, records)
        SELECT tenant_id, entity_type, processing_status, error_code, pg_backend_pid(), sum(delta)
          FROM (SELECT tenant_id, entity_type, COALESCE(processing_status, 'pending') AS processing_status,
                       CASE WHEN processing_status = 'failed'
                            THEN left(COALESCE(error_details->>'code', ''), 100) ELSE '' END AS error_code, -1 AS delta FROM old_rows) AS d
         GROUP BY 1, 2, 3, 4
        HAVING sum(delta) <> 0
         ORDER BY 1, 2, 3, 4
        ON CONFLICT (tenant_id, entity_type, processing_status, error_code, shard)
        DO UPDATE SET records = c.records + EXCLUDED.records;
    ELSE
        INSERT INTO raw_record_counts AS c (tenant_id, entity_type, processing_status, error_code, shard, records)
        SELECT tenant_id, entity_type, processing_status, error_code, pg_backend_pid(), sum(delta)
          FROM (SELECT tenant_id, entity_type, COALESCE(processing_status, 'pending') AS processing_status,
                       CASE WHEN processing_status = 'failed'
                            THEN left(COALESCE(error_details->>'code', ''), 100) ELSE '' END AS error_code, -1 AS delta FROM old_rows
                UNION ALL
                SELECT tenant_id, entity_type, COALESCE(processing_status, 'pending') AS processing_status,
                       CASE WHEN processing_status = 'failed'
                            THEN left(COALESCE(error_details->>'code', ''), 100) ELSE '' END AS error_code, 1 FROM new_rows) AS d
         GROUP BY 1, 2, 3, 4
        HAVING sum(delta) <> 0
         ORDER BY 1, 2, 3, 4
        ON CONFLICT (tenant_id, entity_type, processing_status, error_code, shard)
        DO UPDATE SET records = c.records + EXCLUDED.records;
    END IF;
    RETURN NULL;
END
$$;

CREATE OR REPLACE FUNCTION job_counts_on_change() RETURNS TRIGGER
LANGUAGE plpgsql AS $$
BEGIN
    -- Static statements, one per operation, so that their plans are cached.
    IF TG_OP = 'INSERT' THEN
        INSERT INTO job_counts AS c (tenant_id, job_type, status, shard, jobs)
        SELECT tenant_id, job_type, status, pg_backend_pid(), sum(delta)
          FROM (SELECT tenant_id, job_type, COALESCE(status, 'pending') AS status, 1 AS delta FROM new_rows) AS d
         GROUP BY 1, 2, 3
        HAVING sum(delta) <> 0
         ORDER BY 1, 2, 3
        ON CONFLICT (tenant_id, job_type, status, shard)
        DO UPDATE SET jobs = c.jobs + EXCLUDED.jobs;
    ELSIF TG_OP = 'DELETE' THEN
        INSERT INTO job_counts AS c (tenant_id, job_type, status, shard, jobs)
        SELECT tenant_id, job_type, status, pg_backend_pid(), sum(delta)
          FROM (SELECT tenant_id, job_type, COALESCE(status, 'pending') AS status, -1 AS delta FROM old_rows) AS d
         GROUP BY 1, 2, 3
        HAVING sum(delta) <> 0
         ORDER BY 1, 2, 3
        ON CONFLICT (tenant_id, job_type, status, shard)
        DO UPDATE SET jobs = c.jobs + EXCLUDED.jobs;
    ELSE
        INSERT INTO job_counts AS c (tenant_id, job_type, status, shard, jobs)
        SELECT tenant_id, job_type, status, pg_backend_pid(), sum(delta)
          FROM (SELECT tenant_id, job_type, COALESCE(status, 'pending') AS status, -1 AS delta FROM old_rows
                UNION ALL
                SELECT tenant_id, job_type, COALESCE(status, 'pending') AS status, 1 FROM new_rows) AS d
         GROUP BY 1, 2, 3
        HAVING sum(delta) <> 0
         ORDER BY 1, 2, 3
        ON CONFLICT (tenant_id, job_type, status, shard)
        DO UPDATE SET jobs = c.jobs + EXCLUDED.jobs;
    END IF;
    RETURN NULL;
END
$$;

CREATE OR REPLACE FUNCTION loaded_minutes_on_change() RETURNS TRIGGER
LANGUAGE plpgsql AS $$
BEGIN
    -- Static statements, one per operation, so that their plans are cached.
    IF TG_OP = 'INSERT' THEN
        INSERT INTO loaded_minutes AS c (final_table, tenant_id, minute, shard, rows)
        SELECT final_table, tenant_id, minute, pg_backend_pid(), sum(delta)
          FROM (SELECT TG_TABLE_NAME::text AS final_table, tenant_id, date_trunc('minute', loaded_at) AS minute, 1 AS delta FROM new_rows) AS d
          -- Only the last hours are shown: older minutes are not counted.
          WHERE minute >= date_trunc('minute', LOCALTIMESTAMP) - interval '2 hours'
         GROUP BY 1, 2, 3
        HAVING sum(delta) <> 0
         ORDER BY 1, 2, 3
        ON CONFLICT (final_table, tenant_id, minute, shard)
        DO UPDATE SET rows = c.rows + EXCLUDED.rows;
    ELSIF TG_OP = 'DELETE' THEN
        INSERT INTO loaded_minutes AS c (final_table, tenant_id, minute, shard, rows)
        SELECT final_table, tenant_id, minute, pg_backend_pid(), sum(delta)
          FROM (SELECT TG_TABLE_NAME::text AS final_table, tenant_id, date_trunc('minute', loaded_at) AS minute, -1 AS delta FROM old_rows) AS d
          -- Only the last hours are shown: older minutes are not counted.
          WHERE minute >= date_trunc('minute', LOCALTIMESTAMP) - interval '2 hours'
         GROUP BY 1, 2, 3
        HAVING sum(delta) <> 0
         ORDER BY 1, 2, 3
        ON CONFLICT (final_table, tenant_id, minute, shard)
        DO UPDATE SET rows = c.rows + EXCLUDED.rows;
    ELSE
        INSERT INTO loaded_minutes AS c (final_table, tenant_id, minute, shard, rows)
        SELECT final_table, tenant_id, minute, pg_backend_pid(), sum(delta)
          FROM (SELECT TG_TABLE_NAME::text AS final_table, tenant_id, date_trunc('minute', loaded_at) AS minute, -1 AS delta FROM old_rows
                UNION ALL
                SELECT TG_TABLE_NAME::text AS final_table, tenant_id, date_trunc('minute', loaded_at) AS minute, 1 FROM new_rows) AS d
          -- Only the last hours are shown: older minutes are not counted.
          WHERE minute >= date_trunc('minute', LOCALTIMESTAMP) - interval '2 hours'
         GROUP BY 1, 2, 3
        HAVING sum(delta) <> 0
         ORDER BY 1, 2, 3
        ON CONFLICT (final_table, tenant_id, minute, shard)
        DO UPDATE SET rows = c.rows + EXCLUDED.rows;
    END IF;
    RETURN NULL;
END
$$;

CREATE OR REPLACE FUNCTION console_counts_on_truncate() RETURNS TRIGGER
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_TABLE_NAME = 'raw_extraction_data' THEN
        DELETE FROM raw_record_counts;
    ELSIF TG_TABLE_NAME = 'etl_job_queue' THEN
        DELETE FROM job_counts;
    ELSE
        DELETE FROM loaded_minutes WHERE final_table = TG_TABLE_NAME;
    END IF;
    RETURN NULL;
END
$$;

-- No write may slip between the count of what is there and the first
-- trigger: the tables are held against writes for the rest of the migration.
LOCK TABLE raw_extraction_data, etl_job_queue, work_items, pull_requests IN SHARE MODE;

CREATE TRIGGER raw_record_counts_insert AFTER INSERT ON raw_extraction_data
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION raw_record_counts_on_change();
CREATE TRIGGER raw_record_counts_update AFTER UPDATE ON raw_extraction_data
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION raw_record_counts_on_change();
CREATE TRIGGER raw_record_counts_delete AFTER DELETE ON raw_extraction_data
    REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION raw_record_counts_on_change();
CREATE TRIGGER raw_record_counts_truncate AFTER TRUNCATE ON raw_extraction_data
    FOR EACH STATEMENT EXECUTE FUNCTION console_counts_on_truncate();

CREATE TRIGGER job_counts_insert AFTER INSERT ON etl_job_queue
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION job_counts_on_change();
CREATE TRIGGER job_counts_update AFTER UPDATE ON etl_job_queue
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION job_counts_on_change();
CREATE TRIGGER job_counts_delete AFTER DELETE ON etl_job_queue
    REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION job_counts_on_change();
CREATE TRIGGER job_counts_truncate AFTER TRUNCATE ON etl_job_queue
    FOR EACH STATEMENT EXECUTE FUNCTION console_counts_on_truncate();

CREATE TRIGGER loaded_minutes_insert AFTER INSERT ON work_items
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION loaded_minutes_on_change();
CREATE TRIGGER loaded_minutes_update AFTER UPDATE ON work_items
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION loaded_minutes_on_change();
CREATE TRIGGER loaded_minutes_delete AFTER DELETE ON work_items
    REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION loaded_minutes_on_change();
CREATE TRIGGER loaded_minutes_truncate AFTER TRUNCATE ON work_items
    FOR EACH STATEMENT EXECUTE FUNCTION console_counts_on_truncate();
CREATE TRIGGER loaded_minutes_insert AFTER INSERT ON pull_requests
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION loaded_minutes_on_change();
CREATE TRIGGER loaded_minutes_update AFTER UPDATE ON pull_requests
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION loaded_minutes_on_change();
CREATE TRIGGER loaded_minutes_delete AFTER DELETE ON pull_requests
    REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION loaded_minutes_on_change();
CREATE TRIGGER loaded_minutes_truncate AFTER TRUNCATE ON pull_requests
    FOR EACH STATEMENT EXECUTE FUNCTION console_counts_on_truncate();

INSERT INTO raw_record_counts
SELECT tenant_id, entity_type, COALESCE(processing_status, 'pending'),
       CASE WHEN processing_status = 'failed'
            THEN left(COALESCE(error_details->>'code', ''), 100) ELSE '' END,
       0, count(*)
  FROM raw_extraction_data
 GROUP BY 1, 2, 3, 4;
INSERT INTO job_counts
SELECT tenant_id, job_type, COALESCE(status, 'pending'), 0, count(*)
  FROM etl_job_queue
 GROUP BY 1, 2, 3;
INSERT INTO loaded_minutes
SELECT final_table, tenant_id, minute, 0, count(*)
  FROM (SELECT 'work_items' AS final_table, tenant_id, date_trunc('minute', loaded_at) AS minute
          FROM work_items
        UNION ALL
        SELECT 'pull_requests', tenant_id, date_trunc('minute', loaded_at) FROM pull_requests) AS l
 WHERE minute >= date_trunc('minute', LOCALTIMESTAMP) - interval '2 hours'
 GROUP BY 1, 2, 3;

-- The oldest pending job of a tenant: the first entry of this index.
CREATE INDEX idx_etl_queue_tenant_pending ON etl_job_queue (tenant_id, scheduled_at)
    WHERE status = 'pending';

-- A sample message per failure group: only failed records are in this
-- index, so the records that flow never touch it.
CREATE INDEX idx_raw_data_tenant_failed ON raw_extraction_data (tenant_id, entity_type)
    WHERE processing_status = 'failed';
