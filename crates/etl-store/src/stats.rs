//! The figures of `GET /stats` for one tenant (SPEC §5 "Dashboard"), each
//! from a table or an index that keeps it cheap however much data there is:
//! raw records from `raw_record_counts` (kept by triggers, migration 9),
//! jobs from an index-only count, failures from a partial index of failed
//! records, rows loaded per minute from `(tenant_id, loaded_at)` indexes.

use chrono::NaiveDateTime;
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Double, Int4, Nullable, Text, Timestamp};

use crate::tenants::ActiveTenant;

/// How many of something are in one (kind, status) cell.
#[derive(Debug, Clone, PartialEq, Eq, QueryableByName)]
pub struct Count {
    #[diesel(sql_type = Text)]
    pub kind: String,
    #[diesel(sql_type = Text)]
    pub status: String,
    #[diesel(sql_type = BigInt)]
    pub count: i64,
}

/// The tenant's failed records of one type and `error_details.code`.
#[derive(Debug, Clone, PartialEq, Eq, QueryableByName)]
pub struct FailureGroup {
    #[diesel(sql_type = Text)]
    pub entity_type: String,
    /// `None` for records failed without a code.
    #[diesel(sql_type = Nullable<Text>)]
    pub code: Option<String>,
    #[diesel(sql_type = BigInt)]
    pub count: i64,
    /// One record's `error_details.message`.
    #[diesel(sql_type = Nullable<Text>)]
    pub sample: Option<String>,
}

/// Final-table rows whose `loaded_at` falls in one minute (UTC).
#[derive(Debug, Clone, PartialEq, Eq, QueryableByName)]
pub struct MinuteLoad {
    #[diesel(sql_type = Timestamp)]
    pub minute: NaiveDateTime,
    #[diesel(sql_type = BigInt)]
    pub rows: i64,
}

#[derive(Debug, Clone, PartialEq, QueryableByName)]
struct Backlog {
    #[diesel(sql_type = BigInt)]
    pending: i64,
    #[diesel(sql_type = Double)]
    oldest_age_s: f64,
}

/// Everything `GET /stats` shows for one tenant.
#[derive(Debug, Clone, PartialEq)]
pub struct TenantStats {
    /// Raw records by entity type and status (cells of zero left out).
    pub raw_records: Vec<Count>,
    /// Jobs by job type and status.
    pub jobs: Vec<Count>,
    /// Jobs in status `pending` (due or waiting out a backoff).
    pub outbox_pending: i64,
    /// Seconds since the oldest pending job was scheduled (0 without one).
    pub outbox_oldest_age_s: f64,
    /// Largest groups first.
    pub failures: Vec<FailureGroup>,
    /// The last 60 minutes, oldest first, the current one last.
    pub loaded_per_minute: Vec<MinuteLoad>,
}

/// The figures, read in one transaction so that they agree with each other.
pub fn for_tenant(conn: &mut PgConnection, tenant: ActiveTenant) -> QueryResult<TenantStats> {
    let tenant_id = tenant.id().get();
    conn.transaction(|conn| {
        let raw_records = diesel::sql_query(
            "SELECT entity_type AS kind, processing_status AS status, sum(records)::int8 AS count
               FROM raw_record_counts
              WHERE tenant_id = $1
              GROUP BY 1, 2
             HAVING sum(records) <> 0
              ORDER BY 1, 2",
        )
        .bind::<Int4, _>(tenant_id)
        .load::<Count>(conn)?;
        let jobs = diesel::sql_query(
            "SELECT job_type AS kind, COALESCE(status, 'pending') AS status, count(*) AS count
               FROM etl_job_queue
              WHERE tenant_id = $1
              GROUP BY 1, 2
              ORDER BY 1, 2",
        )
        .bind::<Int4, _>(tenant_id)
        .load::<Count>(conn)?;
        let backlog = diesel::sql_query(
            "SELECT count(*) AS pending,
                    COALESCE(GREATEST(EXTRACT(EPOCH FROM now() - min(scheduled_at)), 0), 0)::float8
                        AS oldest_age_s
               FROM etl_job_queue
              WHERE tenant_id = $1 AND status = 'pending'",
        )
        .bind::<Int4, _>(tenant_id)
        .get_result::<Backlog>(conn)?;
        let failures = diesel::sql_query(
            "SELECT entity_type, error_details->>'code' AS code, count(*) AS count,
                    min(error_details->>'message') AS sample
               FROM raw_extraction_data
              WHERE tenant_id = $1 AND processing_status = 'failed'
              GROUP BY 1, 2
              ORDER BY 3 DESC, 1, 2",
        )
        .bind::<Int4, _>(tenant_id)
        .load::<FailureGroup>(conn)?;
        // Sessions run in UTC, the zone `loaded_at` is written in.
        let loaded_per_minute = diesel::sql_query(
            "WITH since AS (SELECT date_trunc('minute', LOCALTIMESTAMP) - interval '59 minutes' AS t),
                  loaded AS (
                    SELECT date_trunc('minute', loaded_at) AS minute, count(*) AS rows
                      FROM (SELECT loaded_at FROM work_items, since
                             WHERE tenant_id = $1 AND loaded_at >= since.t
                            UNION ALL
                            SELECT loaded_at FROM pull_requests, since
                             WHERE tenant_id = $1 AND loaded_at >= since.t) AS l
                     GROUP BY 1)
             SELECT m.minute, COALESCE(loaded.rows, 0)::int8 AS rows
               FROM since,
                    generate_series(since.t, since.t + interval '59 minutes', interval '1 minute')
                        AS m(minute)
               LEFT JOIN loaded ON loaded.minute = m.minute
              ORDER BY 1",
        )
        .bind::<Int4, _>(tenant_id)
        .load::<MinuteLoad>(conn)?;
        Ok(TenantStats {
            raw_records,
            jobs,
            outbox_pending: backlog.pending,
            outbox_oldest_age_s: backlog.oldest_age_s,
            failures,
            loaded_per_minute,
        })
    })
}

/// Folds the counters of backends that have gone into shard 0 (which no
/// live backend writes), and drops counters that came to zero; returns
/// how many rows were folded. The janitor runs it.
pub fn compact_counts(conn: &mut PgConnection) -> QueryResult<usize> {
    conn.transaction(|conn| {
        let folded = diesel::sql_query(
            "WITH gone AS (
                DELETE FROM raw_record_counts
                 WHERE shard <> 0
                   AND shard NOT IN (SELECT pid FROM pg_stat_activity WHERE pid IS NOT NULL)
                RETURNING tenant_id, entity_type, processing_status, records)
             INSERT INTO raw_record_counts AS c
                    (tenant_id, entity_type, processing_status, shard, records)
             SELECT tenant_id, entity_type, processing_status, 0, sum(records)
               FROM gone
              GROUP BY 1, 2, 3
              ORDER BY 1, 2, 3
             ON CONFLICT (tenant_id, entity_type, processing_status, shard)
             DO UPDATE SET records = c.records + EXCLUDED.records",
        )
        .execute(conn)?;
        diesel::sql_query("DELETE FROM raw_record_counts WHERE shard = 0 AND records = 0")
            .execute(conn)?;
        Ok(folded)
    })
}
