ALTER TABLE raw_extraction_data DROP COLUMN ingest_changes;
