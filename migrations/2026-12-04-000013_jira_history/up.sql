-- Jira history (SPEC §7.1): the changes of every changelog history, the
-- histories themselves (to tell whether an issue's changelog is complete),
-- the statuses with their categories, and work items' derived figures.

-- status_id is loaded; changelog_total is the embedded changelog's `total`
-- (null when the issue came without one). first_in_progress_at and
-- changelog_complete are recomputed from the history tables whenever an
-- input changes (etl_store::derive). The two times are generated from
-- their row, so they can never disagree with it.
ALTER TABLE work_items
    ADD COLUMN status_id VARCHAR(255),
    ADD COLUMN changelog_total INTEGER,
    ADD COLUMN first_in_progress_at TIMESTAMPTZ,
    ADD COLUMN changelog_complete BOOLEAN NOT NULL DEFAULT true,
    ADD COLUMN lead_time_s BIGINT GENERATED ALWAYS AS (
        floor(extract(epoch FROM resolved_at - source_created_at))::bigint) STORED,
    ADD COLUMN cycle_time_s BIGINT GENERATED ALWAYS AS (
        CASE WHEN resolved_at >= first_in_progress_at
             THEN floor(extract(epoch FROM resolved_at - first_in_progress_at))::bigint
        END) STORED;

-- A status's category, failing work_item_statuses, comes from the work
-- items that are in it now (the least category: the first index entry).
CREATE INDEX idx_work_items_status_id
    ON work_items (tenant_id, integration_id, status_id, status_category)
    WHERE status_id IS NOT NULL;
-- GET /work-item-changes?work_item_key=… finds the item by its key.
CREATE INDEX idx_work_items_tenant_key ON work_items (tenant_id, key);

-- One row per item of a history. No foreign keys: a history brings tens of
-- rows per issue, and each key would cost every row a lookup; rows are
-- only written for a job's tenant and the integration of a checked record.
CREATE TABLE work_item_changes (
    id                    BIGSERIAL PRIMARY KEY,
    tenant_id             INTEGER NOT NULL,
    integration_id        INTEGER NOT NULL,
    work_item_external_id VARCHAR(255) NOT NULL,
    changelog_id          VARCHAR(255) NOT NULL,
    item_index            INTEGER NOT NULL,
    field                 TEXT NOT NULL,
    field_type            TEXT,
    from_value            TEXT,
    from_string           TEXT,
    to_value              TEXT,
    to_string             TEXT,
    author                TEXT,
    author_name           TEXT,
    changed_at            TIMESTAMPTZ,
    raw_data_id           INTEGER,
    loaded_at             TIMESTAMP NOT NULL DEFAULT now(),
    CONSTRAINT work_item_changes_source_key
        UNIQUE (tenant_id, integration_id, changelog_id, item_index)
);

CREATE INDEX idx_work_item_changes_item
    ON work_item_changes (tenant_id, integration_id, work_item_external_id);
-- Which items moved to a status (a status's category arrives or changes).
CREATE INDEX idx_work_item_changes_to_status
    ON work_item_changes (tenant_id, integration_id, to_value)
    WHERE field = 'status';
-- GET /work-item-changes pages a tenant's changes by id.
CREATE INDEX idx_work_item_changes_tenant ON work_item_changes (tenant_id, id);

-- Every history seen, items or not: an issue's changelog is complete when
-- as many of its histories are known as its embedded changelog's total.
CREATE TABLE work_item_histories (
    id                    BIGSERIAL PRIMARY KEY,
    tenant_id             INTEGER NOT NULL,
    integration_id        INTEGER NOT NULL,
    work_item_external_id VARCHAR(255) NOT NULL,
    changelog_id          VARCHAR(255) NOT NULL,
    changed_at            TIMESTAMPTZ,
    raw_data_id           INTEGER,
    loaded_at             TIMESTAMP NOT NULL DEFAULT now(),
    CONSTRAINT work_item_histories_source_key
        UNIQUE (tenant_id, integration_id, changelog_id)
);

CREATE INDEX idx_work_item_histories_item
    ON work_item_histories (tenant_id, integration_id, work_item_external_id);

CREATE TABLE work_item_statuses (
    id             SERIAL PRIMARY KEY,
    tenant_id      INTEGER NOT NULL REFERENCES tenants (id),
    integration_id INTEGER NOT NULL REFERENCES integrations (id),
    external_id    VARCHAR(255) NOT NULL,
    name           TEXT,
    category       VARCHAR(50),
    raw_data_id    INTEGER,
    loaded_at      TIMESTAMP NOT NULL DEFAULT now(),
    CONSTRAINT work_item_statuses_source_key UNIQUE (tenant_id, integration_id, external_id)
);

-- The category each status is known by, as the last recompute found it
-- (etl_store::derive): a load that leaves a status's category as it was
-- recomputes none of the work items that moved into it.
CREATE TABLE work_item_status_categories (
    tenant_id      INTEGER NOT NULL,
    integration_id INTEGER NOT NULL,
    status_id      VARCHAR(255) NOT NULL,
    category       VARCHAR(50) NOT NULL,
    PRIMARY KEY (tenant_id, integration_id, status_id)
);

-- The console counts rows loaded per minute in every final table.
CREATE TRIGGER loaded_minutes_insert AFTER INSERT ON work_item_changes
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION loaded_minutes_on_change();
CREATE TRIGGER loaded_minutes_update AFTER UPDATE ON work_item_changes
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION loaded_minutes_on_change();
CREATE TRIGGER loaded_minutes_delete AFTER DELETE ON work_item_changes
    REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION loaded_minutes_on_change();
CREATE TRIGGER loaded_minutes_truncate AFTER TRUNCATE ON work_item_changes
    FOR EACH STATEMENT EXECUTE FUNCTION console_counts_on_truncate();
CREATE TRIGGER loaded_minutes_insert AFTER INSERT ON work_item_statuses
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION loaded_minutes_on_change();
CREATE TRIGGER loaded_minutes_update AFTER UPDATE ON work_item_statuses
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION loaded_minutes_on_change();
CREATE TRIGGER loaded_minutes_delete AFTER DELETE ON work_item_statuses
    REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION loaded_minutes_on_change();
CREATE TRIGGER loaded_minutes_truncate AFTER TRUNCATE ON work_item_statuses
    FOR EACH STATEMENT EXECUTE FUNCTION console_counts_on_truncate();
