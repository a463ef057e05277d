-- What the transactional outbox and the workers need beyond the seed's
-- columns of etl_job_queue (added, none changed).
ALTER TABLE etl_job_queue
    -- When the job was created (scheduled_at moves on retries; this does not).
    ADD COLUMN created_at   TIMESTAMP NOT NULL DEFAULT now(),
    -- When the broker confirmed the job's message (status became 'queued').
    ADD COLUMN queued_at    TIMESTAMP,
    -- A relay publishing the job holds it until then; others skip it.
    ADD COLUMN lease_until  TIMESTAMP,
    -- Refreshed by the worker running the job; a stale one means it died.
    ADD COLUMN heartbeat_at TIMESTAMP,
    -- Which worker runs (or last ran) the job.
    ADD COLUMN worker       TEXT,
    -- Counts and other results of a finished job.
    ADD COLUMN result       JSONB;

-- The relay's question: which pending jobs are due, most urgent first.
CREATE INDEX idx_etl_queue_due ON etl_job_queue (priority, scheduled_at) WHERE status = 'pending';
-- The rescuer's question: which running jobs stopped beating.
CREATE INDEX idx_etl_queue_heartbeat ON etl_job_queue (heartbeat_at) WHERE status = 'running';

-- Job rows are updated several times each (leased, queued, running, done):
-- free space on each page lets PostgreSQL update them in place (HOT) when
-- no indexed column changes, as with the relay's lease.
ALTER TABLE etl_job_queue SET (fillfactor = 70);
