-- Why an insert of one raw record fails, as its SQLSTATE (SPEC §5: "every
-- error tells the truth"). libpq's SQLSTATE does not reach the service
-- through its driver for most errors, so when a store fails the service
-- asks again here, inside a savepoint it rolls back: the same row, the
-- same constraints and triggers, the JSON cast from text inside the block
-- so that a value PostgreSQL refuses is caught too. NULL when the insert
-- succeeds this time (the failure was passing: a deadlock, say).
CREATE FUNCTION etl_raw_insert_sqlstate(
    p_tenant_id int4,
    p_integration_id int4,
    p_entity_type text,
    p_external_id text,
    p_raw_data text,
    p_extraction_metadata text,
    p_ingest_changes text
) RETURNS text
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO raw_extraction_data
        (tenant_id, integration_id, entity_type, external_id, raw_data, extraction_metadata,
         ingest_changes)
    VALUES (p_tenant_id, p_integration_id, p_entity_type, p_external_id, p_raw_data::jsonb,
            p_extraction_metadata::jsonb, p_ingest_changes::jsonb);
    RETURN NULL;
EXCEPTION WHEN OTHERS THEN
    RETURN SQLSTATE;
END
$$;

-- The republisher (SPEC §8) looks for jobs queued long ago and never
-- started: a partial index keeps that look small however many jobs exist.
CREATE INDEX idx_etl_queue_queued_at ON etl_job_queue (queued_at) WHERE status = 'queued';
