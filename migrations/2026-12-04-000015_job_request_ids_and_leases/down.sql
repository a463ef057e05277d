DROP INDEX idx_etl_queue_tenant_fair;
DROP TABLE etl_worker_slots;
DROP TABLE etl_leases;
ALTER TABLE etl_job_queue DROP COLUMN request_id;
