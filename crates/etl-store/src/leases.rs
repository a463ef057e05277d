//! `etl_leases`: which process runs each singleton task (SPEC §12). A lease
//! is held until `expires_at`, by the database's clock; its holder renews it
//! long before then, and any process may take a lease past it.

use diesel::prelude::*;
use diesel::sql_types::{Bool, Double, Text};

/// Takes or renews the lease on `task` for `holder`, valid `ttl_s` seconds
/// from now: answers whether `holder` holds it now. Taken when it is free,
/// already `holder`'s, or expired; otherwise left to its holder.
pub fn hold(conn: &mut PgConnection, task: &str, holder: &str, ttl_s: f64) -> QueryResult<bool> {
    #[derive(QueryableByName)]
    struct Held {
        #[diesel(sql_type = Bool)]
        #[allow(dead_code)] // its presence is the answer
        held: bool,
    }
    let held: Option<Held> = diesel::sql_query(
        "INSERT INTO etl_leases AS l (task, holder, acquired_at, expires_at)
         VALUES ($1, $2, clock_timestamp(), clock_timestamp() + make_interval(secs => $3))
         ON CONFLICT (task) DO UPDATE
            SET holder = EXCLUDED.holder,
                acquired_at = CASE WHEN l.holder = EXCLUDED.holder THEN l.acquired_at
                                   ELSE EXCLUDED.acquired_at END,
                expires_at = EXCLUDED.expires_at
          WHERE l.holder = EXCLUDED.holder OR l.expires_at < clock_timestamp()
         RETURNING true AS held",
    )
    .bind::<Text, _>(task)
    .bind::<Text, _>(holder)
    .bind::<Double, _>(ttl_s)
    .get_result(conn)
    .optional()?;
    Ok(held.is_some())
}

/// Gives the lease on `task` up if `holder` holds it (a graceful stop), so
/// that another process takes it at its next look rather than at expiry.
pub fn release(conn: &mut PgConnection, task: &str, holder: &str) -> QueryResult<bool> {
    let gone = diesel::sql_query("DELETE FROM etl_leases WHERE task = $1 AND holder = $2")
        .bind::<Text, _>(task)
        .bind::<Text, _>(holder)
        .execute(conn)?;
    Ok(gone > 0)
}

/// Who holds `task`'s lease now (an unexpired one), if anyone.
pub fn holder(conn: &mut PgConnection, task: &str) -> QueryResult<Option<String>> {
    #[derive(QueryableByName)]
    struct Held {
        #[diesel(sql_type = Text)]
        holder: String,
    }
    let held: Option<Held> = diesel::sql_query(
        "SELECT holder FROM etl_leases WHERE task = $1 AND expires_at >= clock_timestamp()",
    )
    .bind::<Text, _>(task)
    .get_result(conn)
    .optional()?;
    Ok(held.map(|h| h.holder))
}
