-- GET /raw-data lists one tenant's records of one type in id order, keyset
-- paged: with this index a page reads its `limit` rows and stops, however
-- many records the table holds (the seed's (tenant_id, entity_type) index
-- makes PostgreSQL read and sort every record of the type first).
CREATE INDEX idx_raw_data_tenant_type_id ON raw_extraction_data (tenant_id, entity_type, id);
