-- raw_data_id says which raw record a final row came from; it is
-- provenance, not ownership. As a foreign key it cost every loaded row a
-- lookup and a lock on its raw record (which the same load then updates),
-- and deleting raw records (retention) a scan of the final tables per row,
-- which have no index on it. Raw records may be purged; final rows stay.
ALTER TABLE work_items DROP CONSTRAINT work_items_raw_data_id_fkey;
ALTER TABLE pull_requests DROP CONSTRAINT pull_requests_raw_data_id_fkey;

-- Load jobs carry up to 1000 transformed rows (about 1 MB of JSON), written
-- once and read twice (relay, loader): lz4 compresses and decompresses them
-- several times faster than the default pglz. Large raw records too. A
-- server built without lz4 keeps pglz.
DO $$
BEGIN
    ALTER TABLE etl_job_queue ALTER COLUMN payload SET COMPRESSION lz4;
    ALTER TABLE raw_extraction_data ALTER COLUMN raw_data SET COMPRESSION lz4;
EXCEPTION WHEN feature_not_supported THEN
    RAISE NOTICE 'lz4 is not available: payloads stay compressed with pglz';
END
$$;
