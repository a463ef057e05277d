//! `integrations`: a tenant's connection to a source system. Raw records are
//! stored against one, and only against an active one of the same tenant.

use crate::tenants::ActiveTenant;
use chrono::NaiveDateTime;
use diesel::prelude::*;
use etl_domain::TenantId;

use crate::schema::integrations;

#[derive(Debug, Clone, PartialEq, Queryable, Selectable, Identifiable)]
#[diesel(table_name = integrations, check_for_backend(diesel::pg::Pg))]
pub struct Integration {
    pub id: i32,
    pub tenant_id: i32,
    pub provider: String,
    pub name: String,
    pub active: bool,
    pub settings: serde_json::Value,
    pub created_at: Option<NaiveDateTime>,
}

#[derive(Debug, Clone, Insertable)]
#[diesel(table_name = integrations)]
pub struct NewIntegration<'a> {
    pub tenant_id: i32,
    pub provider: &'a str,
    pub name: &'a str,
    pub active: bool,
    pub settings: serde_json::Value,
}

pub fn insert(conn: &mut PgConnection, new: &NewIntegration<'_>) -> QueryResult<Integration> {
    diesel::insert_into(integrations::table)
        .values(new)
        .returning(Integration::as_returning())
        .get_result(conn)
}

/// The tenant's integration with this id; `None` when it does not exist or
/// belongs to another tenant (the caller cannot tell the two apart).
pub fn find_for_tenant(
    conn: &mut PgConnection,
    tenant: ActiveTenant,
    id: etl_domain::IntegrationId,
) -> QueryResult<Option<Integration>> {
    let id = id.get();
    let tenant_id = tenant.id().get();
    integrations::table
        .filter(integrations::id.eq(id))
        .filter(integrations::tenant_id.eq(tenant_id))
        .select(Integration::as_select())
        .first(conn)
        .optional()
}

/// Of `ids`, those that are active integrations of the tenant.
pub fn active_ids_for_tenant(
    conn: &mut PgConnection,
    tenant: ActiveTenant,
    ids: &[etl_domain::IntegrationId],
) -> QueryResult<Vec<etl_domain::IntegrationId>> {
    let tenant_id = tenant.id().get();
    let ids: Vec<i32> = ids.iter().map(|id| id.get()).collect();
    let usable: Vec<i32> = integrations::table
        .filter(integrations::id.eq_any(ids))
        .filter(integrations::tenant_id.eq(tenant_id))
        .filter(integrations::active.eq(true))
        .select(integrations::id)
        .load(conn)?;
    Ok(usable
        .into_iter()
        .map(etl_domain::IntegrationId::new)
        .collect())
}

pub fn list_for_tenant(
    conn: &mut PgConnection,
    tenant_id: TenantId,
) -> QueryResult<Vec<Integration>> {
    let tenant_id = tenant_id.get();
    integrations::table
        .filter(integrations::tenant_id.eq(tenant_id))
        .order(integrations::id)
        .select(Integration::as_select())
        .load(conn)
}

pub fn set_active(
    conn: &mut PgConnection,
    id: etl_domain::IntegrationId,
    active: bool,
) -> QueryResult<usize> {
    let id = id.get();
    diesel::update(integrations::table.find(id))
        .set(integrations::active.eq(active))
        .execute(conn)
}

/// The tenant's integrations among `ids`, with their settings.
pub fn find_many_for_tenant(
    conn: &mut PgConnection,
    tenant_id: TenantId,
    ids: &[etl_domain::IntegrationId],
) -> QueryResult<Vec<Integration>> {
    let tenant_id = tenant_id.get();
    let ids: Vec<i32> = ids.iter().map(|id| id.get()).collect();
    integrations::table
        .filter(integrations::id.eq_any(ids))
        .filter(integrations::tenant_id.eq(tenant_id))
        .select(Integration::as_select())
        .load(conn)
}
