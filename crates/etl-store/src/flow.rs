//! `GET /flow-metrics` (SPEC §7.4): percentiles of the work items resolved
//! and the pull requests merged in a window, by PostgreSQL's
//! `percentile_cont`, for one tenant.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel::sql_types::{Array, BigInt, Double, Int4, Nullable, Text, Timestamptz};
use etl_domain::{Percentiles, PullRequestFlow, WorkItemFlow};

use crate::tenants::ActiveTenant;

/// What `GET /flow-metrics` filters on.
#[derive(Debug, Clone, Copy)]
pub struct FlowWindow<'a> {
    pub since: DateTime<Utc>,
    pub until: DateTime<Utc>,
    /// Filters the work items only.
    pub project_key: Option<&'a str>,
    /// Filters the pull requests only.
    pub repository: Option<&'a str>,
}

#[derive(QueryableByName)]
struct Counted {
    #[diesel(sql_type = BigInt)]
    count: i64,
    #[diesel(sql_type = Nullable<Array<Nullable<Double>>>)]
    a: Option<Vec<Option<f64>>>,
    #[diesel(sql_type = Nullable<Array<Nullable<Double>>>)]
    b: Option<Vec<Option<f64>>>,
    #[diesel(sql_type = Nullable<Array<Nullable<Double>>>)]
    c: Option<Vec<Option<f64>>>,
}

/// p50, p85 and p95 from `percentile_cont(ARRAY[0.5, 0.85, 0.95])`
/// (null over no value).
fn percentiles(values: Option<Vec<Option<f64>>>) -> Percentiles {
    let values = values.unwrap_or_default();
    let at = |i: usize| values.get(i).copied().flatten();
    Percentiles {
        p50: at(0),
        p85: at(1),
        p95: at(2),
    }
}

const QUANTILES: &str = "ARRAY[0.5, 0.85, 0.95]::float8[]";

/// The work items' half of the figures of `tenant` over `window`: those
/// resolved in it (of `window.project_key` only, when given).
pub fn work_item_flow(
    conn: &mut PgConnection,
    tenant: ActiveTenant,
    window: FlowWindow<'_>,
) -> QueryResult<WorkItemFlow> {
    let work: Counted = diesel::sql_query(format!(
        "SELECT count(*) AS count,
                percentile_cont({QUANTILES}) WITHIN GROUP (ORDER BY lead_time_s) AS a,
                percentile_cont({QUANTILES}) WITHIN GROUP (ORDER BY cycle_time_s) AS b,
                NULL::float8[] AS c
           FROM work_items
          WHERE tenant_id = $1 AND resolved_at >= $2 AND resolved_at < $3
            AND ($4::text IS NULL OR project_key = $4)"
    ))
    .bind::<Int4, _>(tenant.id().get())
    .bind::<Timestamptz, _>(window.since)
    .bind::<Timestamptz, _>(window.until)
    .bind::<Nullable<Text>, _>(window.project_key)
    .get_result(conn)?;
    Ok(WorkItemFlow {
        count: work.count,
        lead_time_s: percentiles(work.a),
        cycle_time_s: percentiles(work.b),
    })
}

/// The pull requests' half of the figures of `tenant` over `window`:
/// those merged in it (of `window.repository` only, when given).
pub fn pull_request_flow(
    conn: &mut PgConnection,
    tenant: ActiveTenant,
    window: FlowWindow<'_>,
) -> QueryResult<PullRequestFlow> {
    let pulls: Counted = diesel::sql_query(format!(
        "SELECT count(*) AS count,
                percentile_cont({QUANTILES}) WITHIN GROUP (ORDER BY coding_time_s) AS a,
                percentile_cont({QUANTILES}) WITHIN GROUP (ORDER BY pickup_time_s) AS b,
                percentile_cont({QUANTILES}) WITHIN GROUP (ORDER BY review_time_s) AS c
           FROM pull_requests
          WHERE tenant_id = $1 AND merged_at >= $2 AND merged_at < $3
            AND ($4::text IS NULL OR repository = $4)"
    ))
    .bind::<Int4, _>(tenant.id().get())
    .bind::<Timestamptz, _>(window.since)
    .bind::<Timestamptz, _>(window.until)
    .bind::<Nullable<Text>, _>(window.repository)
    .get_result(conn)?;
    Ok(PullRequestFlow {
        count: pulls.count,
        coding_time_s: percentiles(pulls.a),
        pickup_time_s: percentiles(pulls.b),
        review_time_s: percentiles(pulls.c),
    })
}
