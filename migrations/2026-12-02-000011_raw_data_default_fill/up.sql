-- Back to PostgreSQL's default fill for raw_extraction_data (migration 10
-- left half of each page free). Half-empty pages cost more than they saved:
-- beside the retention prune a single store fell from 87% to 72-74% of a
-- bare INSERT (`cargo xtask bench stats`), records not yet processed took
-- up to twice the disk, and `cargo xtask bench pipeline` ran no faster.
-- Only pages written from now on are filled to the brim again; pages
-- already written stay as they are until their rows are rewritten.
ALTER TABLE raw_extraction_data RESET (fillfactor);
