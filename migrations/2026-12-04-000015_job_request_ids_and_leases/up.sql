-- SPEC §12, observability: the request that created a job (its
-- x-request-id), carried into the job's tracing span and shown by
-- GET /jobs/{id}. Null for jobs made by the service itself or before this
-- migration. Request ids are at most 128 characters (the HTTP layer's own
-- bound on a client's x-request-id).
ALTER TABLE etl_job_queue ADD COLUMN request_id text
    CONSTRAINT etl_job_queue_request_id_length CHECK (char_length(request_id) <= 128);

-- SPEC §12, singletons: the rescuer, the janitor, the republisher and
-- retention each run in one process at a time, the holder of the task's
-- lease. A holder renews its lease well before `expires_at`; a lease past
-- `expires_at` may be taken by any process (the holder died or lost
-- PostgreSQL). Times are the database's clock only, so processes' clocks
-- never have to agree.
CREATE TABLE etl_leases (
    task text PRIMARY KEY,
    holder text NOT NULL,
    acquired_at timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz NOT NULL
);

-- SPEC §12, fairness: the worker slots of each live process (its renewed
-- row; a process that dies stops renewing and its row expires). Half their
-- sum is the default of ETL_TENANT_MAX_IN_FLIGHT.
CREATE TABLE etl_worker_slots (
    holder text PRIMARY KEY,
    slots integer NOT NULL CHECK (slots >= 0),
    expires_at timestamptz NOT NULL
);

-- The fair relay and the PostgreSQL-mode claim walk the tenants that have
-- due transform and load jobs (a skip scan over tenant_id) and take each
-- one's most urgent jobs in order, reading only those.
CREATE INDEX idx_etl_queue_tenant_fair ON etl_job_queue (tenant_id, priority, scheduled_at, id)
    WHERE status = 'pending' AND job_type <> 'extract';
