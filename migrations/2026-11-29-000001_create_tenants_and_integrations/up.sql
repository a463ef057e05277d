-- Tenants own everything; integrations are a tenant's connections to a source
-- (a Jira site, a GitHub organisation).
CREATE TABLE tenants (
    id         SERIAL PRIMARY KEY,
    name       TEXT NOT NULL,
    active     BOOLEAN NOT NULL DEFAULT TRUE,
    created_at TIMESTAMP DEFAULT now()
);

CREATE TABLE integrations (
    id         SERIAL PRIMARY KEY,
    tenant_id  INTEGER NOT NULL REFERENCES tenants (id),
    provider   VARCHAR(50) NOT NULL,
    name       TEXT NOT NULL,
    active     BOOLEAN NOT NULL DEFAULT TRUE,
    -- e.g. {"custom_field_mappings": {"story_points": "customfield_10016"}}
    settings   JSONB NOT NULL DEFAULT '{}',
    created_at TIMESTAMP DEFAULT now(),
    CONSTRAINT integrations_settings_is_object CHECK (jsonb_typeof(settings) = 'object')
);

CREATE INDEX idx_integrations_tenant ON integrations (tenant_id);
