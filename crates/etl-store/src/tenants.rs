//! `tenants`: who owns data. A request acts for the tenant named by its token.

use chrono::NaiveDateTime;
use diesel::prelude::*;

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
