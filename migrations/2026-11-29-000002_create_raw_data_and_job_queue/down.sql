DROP TABLE etl_job_queue;
DROP TABLE raw_extraction_data;
