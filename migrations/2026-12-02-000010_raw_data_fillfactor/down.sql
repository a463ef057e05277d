ALTER TABLE raw_extraction_data RESET (fillfactor);
