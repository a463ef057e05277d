ALTER TABLE etl_job_queue ALTER COLUMN payload SET COMPRESSION default;
ALTER TABLE raw_extraction_data ALTER COLUMN raw_data SET COMPRESSION default;

-- NOT VALID: rows loaded meanwhile may name raw records since purged.
ALTER TABLE work_items
    ADD CONSTRAINT work_items_raw_data_id_fkey FOREIGN KEY (raw_data_id)
    REFERENCES raw_extraction_data (id) ON DELETE SET NULL NOT VALID;
ALTER TABLE pull_requests
    ADD CONSTRAINT pull_requests_raw_data_id_fkey FOREIGN KEY (raw_data_id)
    REFERENCES raw_extraction_data (id) ON DELETE SET NULL NOT VALID;
