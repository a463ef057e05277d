-- Final tables (SPEC §7): one row per source record, keyed by
-- (tenant_id, integration_id, external_id). Source timestamps keep their
-- instant (timestamptz) because Jira and GitHub send them with offsets.
CREATE TABLE work_items (
    id                SERIAL PRIMARY KEY,
    tenant_id         INTEGER NOT NULL REFERENCES tenants (id),
    integration_id    INTEGER NOT NULL REFERENCES integrations (id),
    external_id       VARCHAR(255) NOT NULL,
    key               VARCHAR(255),
    project_key       VARCHAR(255),
    summary           TEXT NOT NULL,
    description       TEXT,
    issue_type        TEXT,
    status            TEXT,
    status_category   VARCHAR(50),
    priority          TEXT,
    assignee          TEXT,
    assignee_name     TEXT,
    reporter          TEXT,
    labels            TEXT[] NOT NULL DEFAULT '{}',
    parent_key        VARCHAR(255),
    source_created_at TIMESTAMPTZ,
    source_updated_at TIMESTAMPTZ,
    resolved_at       TIMESTAMPTZ,
    story_points      DOUBLE PRECISION,
    custom_fields     JSONB NOT NULL DEFAULT '{}',
    raw_data_id       INTEGER REFERENCES raw_extraction_data (id) ON DELETE SET NULL,
    loaded_at         TIMESTAMP NOT NULL DEFAULT now(),
    CONSTRAINT work_items_source_key UNIQUE (tenant_id, integration_id, external_id)
);

CREATE INDEX idx_work_items_tenant_project ON work_items (tenant_id, project_key, id);
CREATE INDEX idx_work_items_tenant_status ON work_items (tenant_id, status, id);

CREATE TABLE pull_requests (
    id                SERIAL PRIMARY KEY,
    tenant_id         INTEGER NOT NULL REFERENCES tenants (id),
    integration_id    INTEGER NOT NULL REFERENCES integrations (id),
    external_id       VARCHAR(255) NOT NULL,
    repository        VARCHAR(255),
    number            INTEGER,
    title             TEXT,
    state             VARCHAR(10) NOT NULL,
    draft             BOOLEAN,
    author            TEXT,
    base_ref          TEXT,
    head_ref          TEXT,
    head_sha          VARCHAR(64),
    labels            TEXT[] NOT NULL DEFAULT '{}',
    source_created_at TIMESTAMPTZ,
    source_updated_at TIMESTAMPTZ,
    closed_at         TIMESTAMPTZ,
    merged_at         TIMESTAMPTZ,
    additions         INTEGER,
    deletions         INTEGER,
    changed_files     INTEGER,
    commits           INTEGER,
    comments          INTEGER,
    review_comments   INTEGER,
    raw_data_id       INTEGER REFERENCES raw_extraction_data (id) ON DELETE SET NULL,
    loaded_at         TIMESTAMP NOT NULL DEFAULT now(),
    CONSTRAINT pull_requests_source_key UNIQUE (tenant_id, integration_id, external_id),
    CONSTRAINT pull_requests_state_known CHECK (state IN ('open', 'closed', 'merged'))
);

CREATE INDEX idx_pull_requests_tenant_repository ON pull_requests (tenant_id, repository, id);
CREATE INDEX idx_pull_requests_tenant_state ON pull_requests (tenant_id, state, id);
