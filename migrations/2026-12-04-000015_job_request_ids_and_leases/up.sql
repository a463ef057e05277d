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
