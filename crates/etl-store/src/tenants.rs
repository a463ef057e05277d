//! `tenants`: who owns data. A request acts for the tenant named by its token.

use chrono::NaiveDateTime;
use diesel::prelude::*;
use etl_domain::TenantId;

use crate::schema::tenants;

#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable, Identifiable)]
#[diesel(table_name = tenants, check_for_backend(diesel::pg::Pg))]
pub struct Tenant {
    pub id: i32,
    pub name: String,
    pub active: bool,
    pub created_at: Option<NaiveDateTime>,
}

#[derive(Debug, Clone, Insertable)]
#[diesel(table_name = tenants)]
pub struct NewTenant<'a> {
    pub name: &'a str,
    pub active: bool,
}

pub fn insert(conn: &mut PgConnection, new: &NewTenant<'_>) -> QueryResult<Tenant> {
    diesel::insert_into(tenants::table)
        .values(new)
        .returning(Tenant::as_returning())
        .get_result(conn)
}

pub fn find(conn: &mut PgConnection, id: i32) -> QueryResult<Option<Tenant>> {
    tenants::table
        .find(id)
        .select(Tenant::as_select())
        .first(conn)
        .optional()
}

pub fn find_by_name(conn: &mut PgConnection, name: &str) -> QueryResult<Option<Tenant>> {
    tenants::table
        .filter(tenants::name.eq(name))
        .order(tenants::id)
        .select(Tenant::as_select())
        .first(conn)
        .optional()
}

pub fn set_active(conn: &mut PgConnection, id: i32, active: bool) -> QueryResult<usize> {
    diesel::update(tenants::table.find(id))
        .set(tenants::active.eq(active))
        .execute(conn)
}

/// Proof that a tenant was found active: the one door to a tenant's data.
///
/// Only [`activate`] makes one, after reading the tenant, so a function that
/// takes an `ActiveTenant` cannot be reached for a missing or inactive
/// tenant, or for a tenant id nobody checked. It is good for the request or
/// transaction it was made for; keep it no longer.
///
/// Two kinds of store functions take a bare [`TenantId`] instead: those that
/// check the tenant inside their own statement (the checked inserts and the
/// raw-data page), and those that act for a job, whose tenant was checked
/// when the job was made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ActiveTenant(TenantId);

impl ActiveTenant {
    pub fn id(self) -> TenantId {
        self.0
    }
}

/// Why [`activate`] gave no proof.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TenantRefusal {
    #[error("Tenant {0} does not exist")]
    Missing(TenantId),
    #[error("Tenant {0} is inactive")]
    Inactive(TenantId),
}

/// The door: reads the tenant once and hands out the proof that it is active.
pub fn activate(
    conn: &mut PgConnection,
    id: TenantId,
) -> QueryResult<Result<ActiveTenant, TenantRefusal>> {
    let active = tenants::table
        .find(id.get())
        .select(tenants::active)
        .first::<bool>(conn)
        .optional()?;
    Ok(match active {
        Some(true) => Ok(ActiveTenant(id)),
        Some(false) => Err(TenantRefusal::Inactive(id)),
        None => Err(TenantRefusal::Missing(id)),
    })
}
