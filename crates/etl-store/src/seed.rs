//! The demo data of `serve --dev` and `cargo xtask seed`: one tenant with a
//! Jira and a GitHub integration. Idempotent: running it again finds them.

use diesel::prelude::*;
use serde_json::json;

use crate::integrations::{self, Integration, NewIntegration};
use crate::tenants::{self, NewTenant, Tenant};

pub const DEMO_TENANT: &str = "demo";

#[derive(Debug, Clone)]
pub struct DemoSeed {
    pub tenant: Tenant,
    pub jira: Integration,
    pub github: Integration,
}

pub fn ensure_demo(conn: &mut PgConnection) -> QueryResult<DemoSeed> {
    ensure_tenant(conn, DEMO_TENANT, "Demo Jira", "Demo GitHub")
}

/// Finds or creates the tenant called `name`, with an active Jira (story
/// points in `customfield_10016`) and GitHub integration
/// (`cargo xtask tenant add`, the demo seed).
pub fn ensure_tenant(
    conn: &mut PgConnection,
    name: &str,
    jira_name: &str,
    github_name: &str,
) -> QueryResult<DemoSeed> {
    conn.transaction(|conn| {
        let tenant = match tenants::find_by_name(conn, name)? {
            Some(tenant) => tenant,
            None => tenants::insert(conn, &NewTenant { name, active: true })?,
        };
        let existing = integrations::list_for_tenant(conn, etl_domain::TenantId::new(tenant.id))?;
        let mut find_or_insert = |provider: &str, name: &str, settings| match existing
            .iter()
            .find(|i| i.provider == provider)
        {
            Some(found) => Ok(found.clone()),
            None => integrations::insert(
                conn,
                &NewIntegration {
                    tenant_id: tenant.id,
                    provider,
                    name,
                    active: true,
                    settings,
                },
            ),
        };
        let jira = find_or_insert(
            "jira",
            jira_name,
            json!({"custom_field_mappings": {"story_points": "customfield_10016"}}),
        )?;
        let github = find_or_insert("github", github_name, json!({}))?;
        Ok(DemoSeed {
            tenant,
            jira,
            github,
        })
    })
}
