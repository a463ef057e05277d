ALTER TABLE raw_extraction_data SET (fillfactor = 50);
