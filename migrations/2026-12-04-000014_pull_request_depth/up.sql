-- Pull-request depth (SPEC §7.2, §7.3): commits and reviews of each pull
-- request, its links to work items, and its derived figures; indexes for
-- GET /flow-metrics (§7.4).

-- body, html_url and merge_commit_sha are loaded; work_item_keys too: the
-- keys the transform found with the integration's pattern, as
-- [{"key", "found_in"}] (null for a row loaded before this migration).
-- first_commit_at, first_review_at and approved_at are recomputed from the
-- commits and reviews whenever an input changes (etl_store::derive); the
-- three times are generated from their row.
ALTER TABLE pull_requests
    ADD COLUMN body TEXT,
    ADD COLUMN html_url TEXT,
    ADD COLUMN merge_commit_sha VARCHAR(64),
    ADD COLUMN work_item_keys JSONB,
    ADD COLUMN first_commit_at TIMESTAMPTZ,
    ADD COLUMN first_review_at TIMESTAMPTZ,
    ADD COLUMN approved_at TIMESTAMPTZ,
    ADD COLUMN coding_time_s BIGINT GENERATED ALWAYS AS (
        CASE WHEN source_created_at >= first_commit_at
             THEN floor(extract(epoch FROM source_created_at - first_commit_at))::bigint
        END) STORED,
    ADD COLUMN pickup_time_s BIGINT GENERATED ALWAYS AS (
        CASE WHEN first_review_at >= source_created_at
             THEN floor(extract(epoch FROM first_review_at - source_created_at))::bigint
        END) STORED,
    ADD COLUMN review_time_s BIGINT GENERATED ALWAYS AS (
        CASE WHEN merged_at >= first_review_at
             THEN floor(extract(epoch FROM merged_at - first_review_at))::bigint
        END) STORED;

-- A commit or review finds its pull request by number and repository.
-- This index and the reviews' one below lead with the number, and the
-- recompute (etl_store::derive) leaves tenant_id out of its index
-- conditions (`tenant_id + 0`): right after a bulk load, before any
-- ANALYZE, every index of a table looks like it finds one row, and the
-- planner took (tenant_id, repository, id) and read every pull request of
-- the repository for each one looked up. No other index leads with the
-- number, so there is no other index to take.
CREATE INDEX idx_pull_requests_number
    ON pull_requests (number, repository, integration_id, tenant_id);
-- Links find the work item of a key the same way.
CREATE INDEX idx_work_items_key ON work_items (key, tenant_id);
-- GET /flow-metrics: pull requests merged, work items resolved in a window.
CREATE INDEX idx_pull_requests_tenant_merged
    ON pull_requests (tenant_id, merged_at) WHERE merged_at IS NOT NULL;
CREATE INDEX idx_work_items_tenant_resolved
    ON work_items (tenant_id, resolved_at) WHERE resolved_at IS NOT NULL;

-- No foreign keys on the child tables, as for work_item_changes: a pull
-- request brings several rows of each, and rows are only written for a
-- job's tenant and the integration of a checked record.
CREATE TABLE pull_request_commits (
    id             BIGSERIAL PRIMARY KEY,
    tenant_id      INTEGER NOT NULL,
    integration_id INTEGER NOT NULL,
    repository     VARCHAR(255) NOT NULL,
    pull_number    INTEGER NOT NULL,
    sha            VARCHAR(64) NOT NULL,
    author_login   TEXT,
    author_name    TEXT,
    author_email   TEXT,
    authored_at    TIMESTAMPTZ,
    committed_at   TIMESTAMPTZ,
    message        TEXT,
    raw_data_id    INTEGER,
    loaded_at      TIMESTAMP NOT NULL DEFAULT now(),
    CONSTRAINT pull_request_commits_source_key
        UNIQUE (tenant_id, integration_id, repository, pull_number, sha)
);

CREATE TABLE pull_request_reviews (
    id             BIGSERIAL PRIMARY KEY,
    tenant_id      INTEGER NOT NULL,
    integration_id INTEGER NOT NULL,
    external_id    VARCHAR(255) NOT NULL,
    repository     VARCHAR(255) NOT NULL,
    pull_number    INTEGER NOT NULL,
    reviewer       TEXT,
    state          VARCHAR(32),
    submitted_at   TIMESTAMPTZ,
    body           TEXT,
    commit_sha     VARCHAR(64),
    raw_data_id    INTEGER,
    loaded_at      TIMESTAMP NOT NULL DEFAULT now(),
    CONSTRAINT pull_request_reviews_source_key
        UNIQUE (tenant_id, integration_id, external_id)
);

CREATE INDEX idx_pull_request_reviews_pull
    ON pull_request_reviews (pull_number, repository, integration_id, tenant_id);

-- One row per distinct work-item key a pull request names; work_item_id
-- stays null while the tenant has no work item of that key, and is set
-- when one arrives (etl_store::derive).
CREATE TABLE pull_request_work_items (
    id              BIGSERIAL PRIMARY KEY,
    tenant_id       INTEGER NOT NULL,
    pull_request_id INTEGER NOT NULL REFERENCES pull_requests (id) ON DELETE CASCADE,
    work_item_key   VARCHAR(255) NOT NULL,
    found_in        VARCHAR(10) NOT NULL,
    work_item_id    INTEGER REFERENCES work_items (id) ON DELETE SET NULL,
    CONSTRAINT pull_request_work_items_key UNIQUE (pull_request_id, work_item_key),
    CONSTRAINT pull_request_work_items_found_in_known
        CHECK (found_in IN ('title', 'head_ref', 'body'))
);

-- A work item that arrives resolves the links waiting for its key.
CREATE INDEX idx_pull_request_work_items_key
    ON pull_request_work_items (tenant_id, work_item_key);
CREATE INDEX idx_pull_request_work_items_work_item
    ON pull_request_work_items (work_item_id) WHERE work_item_id IS NOT NULL;

-- The console counts rows loaded per minute in every final table.
CREATE TRIGGER loaded_minutes_insert AFTER INSERT ON pull_request_commits
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION loaded_minutes_on_change();
CREATE TRIGGER loaded_minutes_update AFTER UPDATE ON pull_request_commits
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION loaded_minutes_on_change();
CREATE TRIGGER loaded_minutes_delete AFTER DELETE ON pull_request_commits
    REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION loaded_minutes_on_change();
CREATE TRIGGER loaded_minutes_truncate AFTER TRUNCATE ON pull_request_commits
    FOR EACH STATEMENT EXECUTE FUNCTION console_counts_on_truncate();
CREATE TRIGGER loaded_minutes_insert AFTER INSERT ON pull_request_reviews
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION loaded_minutes_on_change();
CREATE TRIGGER loaded_minutes_update AFTER UPDATE ON pull_request_reviews
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION loaded_minutes_on_change();
CREATE TRIGGER loaded_minutes_delete AFTER DELETE ON pull_request_reviews
    REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION loaded_minutes_on_change();
CREATE TRIGGER loaded_minutes_truncate AFTER TRUNCATE ON pull_request_reviews
    FOR EACH STATEMENT EXECUTE FUNCTION console_counts_on_truncate();
