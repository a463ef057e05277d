-- What was changed in a raw record on the way in (SPEC §5): one
-- {"field": "raw_data.fields.summary", "change": "removed_nul"} per place.
ALTER TABLE raw_extraction_data
    ADD COLUMN ingest_changes JSONB NOT NULL DEFAULT '[]';
