ALTER TABLE etl_job_queue RESET (fillfactor);
DROP INDEX idx_etl_queue_heartbeat;
DROP INDEX idx_etl_queue_due;
ALTER TABLE etl_job_queue
    DROP COLUMN result,
    DROP COLUMN worker,
    DROP COLUMN heartbeat_at,
    DROP COLUMN lease_until,
    DROP COLUMN queued_at,
    DROP COLUMN created_at;
