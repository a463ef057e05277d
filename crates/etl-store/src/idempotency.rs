//! `idempotency_keys`: the first answer to each `Idempotency-Key`.
//!
//! Protocol, inside one transaction: [`claim`] the key (inserting its row
//! locks it; a concurrent claim of the same key waits until this
//! transaction ends), do the work, [`record`] the answer, commit. If the
//! claim finds the key already answered, return that answer instead and do
//! nothing. A failed request rolls back its claim, so a retry runs afresh.

use crate::tenants::ActiveTenant;
use diesel::prelude::*;

use crate::schema::idempotency_keys as keys;

/// What claiming a key found.
#[derive(Debug, Clone, PartialEq)]
pub enum Claim {
    /// The key is new: do the work and [`record`] its answer.
    Fresh,
    /// The key was answered before: (status, body) of that answer.
    Answered {
        status: u16,
        body: serde_json::Value,
    },
}

pub fn claim(
    conn: &mut PgConnection,
    tenant: ActiveTenant,
    route: &str,
    key: &str,
) -> QueryResult<Claim> {
    let tenant_id = tenant.id().get();
    let inserted = diesel::insert_into(keys::table)
        .values((
            keys::tenant_id.eq(tenant_id),
            keys::route.eq(route),
            keys::key.eq(key),
        ))
        .on_conflict_do_nothing()
        .execute(conn)?;
    if inserted == 1 {
        return Ok(Claim::Fresh);
    }
    let (status, body): (Option<i16>, Option<serde_json::Value>) = keys::table
        .find((tenant_id, route, key))
        .select((keys::status_code, keys::response))
        .first(conn)?;
    Ok(Claim::Answered {
        status: status.and_then(|s| u16::try_from(s).ok()).unwrap_or(200),
        body: body.unwrap_or(serde_json::Value::Null),
    })
}

pub fn record(
    conn: &mut PgConnection,
    tenant: ActiveTenant,
    route: &str,
    key: &str,
    status: u16,
    body: &serde_json::Value,
) -> QueryResult<()> {
    let tenant_id = tenant.id().get();
    diesel::update(keys::table.find((tenant_id, route, key)))
        .set((
            keys::status_code.eq(i16::try_from(status).unwrap_or(i16::MAX)),
            keys::response.eq(body),
        ))
        .execute(conn)?;
    Ok(())
}

/// Forgets keys first used before `cutoff`; a repeat after that is a new
/// request. Returns how many were forgotten.
pub fn forget_before(conn: &mut PgConnection, cutoff: chrono::NaiveDateTime) -> QueryResult<usize> {
    diesel::delete(keys::table.filter(keys::created_at.lt(cutoff))).execute(conn)
}
