DROP INDEX idx_etl_queue_queued_at;
DROP FUNCTION etl_raw_insert_sqlstate(int4, int4, text, text, text, text, text);
