//! Fresh planner statistics for the tables the jobs read by key.
//!
//! The recompute (`derive`) looks rows up one by one, and PostgreSQL
//! chooses among the indexes of a table by its statistics. Right after a
//! bulk load into a table last analyzed small (a new tenant, a truncate),
//! every index looks as if it found one row, and the planner may take one
//! that reads the whole tenant per lookup: a job then costs what the tenant
//! holds. Autovacuum analyzes such a table within a minute or so, when it
//! runs at all; this analyzes the final tables itself as soon as more rows
//! have changed since their last ANALYZE than half of what they held.

use diesel::prelude::*;
use diesel::sql_types::{Array, Text};
use etl_domain::transform;

/// Tables analyzed when stale: the final tables, and the links.
fn tables() -> Vec<&'static str> {
    transform::TABLES
        .iter()
        .map(|t| t.name)
        .chain(["pull_request_work_items", "work_item_status_categories"])
        .collect()
}

/// Rows changed since the last ANALYZE before a table counts as stale,
/// at the least.
const STALE_ROWS: i64 = 1000;

/// Analyzes every table of [`tables`] changed by more than half its rows
/// (and [`STALE_ROWS`]) since it was last analyzed. Answers their names.
pub fn analyze_stale(conn: &mut PgConnection) -> QueryResult<Vec<String>> {
    #[derive(QueryableByName)]
    struct Stale {
        #[diesel(sql_type = Text)]
        name: String,
    }
    let stale: Vec<Stale> = diesel::sql_query(
        "SELECT s.relname::text AS name
           FROM pg_stat_user_tables s JOIN pg_class c ON c.oid = s.relid
          WHERE s.schemaname = current_schema() AND s.relname = ANY ($1)
            AND s.n_mod_since_analyze > GREATEST($2, 0.5 * c.reltuples)
          ORDER BY s.relname",
    )
    .bind::<Array<Text>, _>(tables())
    .bind::<diesel::sql_types::BigInt, _>(STALE_ROWS)
    .load(conn)?;
    for table in &stale {
        // The name came from the catalogue and is one of ours; quoted anyway.
        diesel::sql_query(format!("ANALYZE \"{}\"", table.name)).execute(conn)?;
    }
    Ok(stale.into_iter().map(|s| s.name).collect())
}
