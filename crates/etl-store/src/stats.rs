//! The figures of `GET /stats` for one tenant (SPEC §5 "Dashboard"), each
//! from a table or an index that keeps it cheap however much data there is:
//! raw records and failures by code from `raw_record_counts`, jobs from
//! `job_counts`, rows loaded per minute from `loaded_minutes` (counters kept
//! by statement-level triggers, migration 9); the oldest pending job and a
//! sample message per failure group from partial indexes.

use chrono::NaiveDateTime;
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Double, Int4, Nullable, Text, Timestamp};

use crate::tenants::ActiveTenant;

/// How many of something are in one (kind, status) cell.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, QueryableByName)]
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
struct OldestPending {
    #[diesel(sql_type = Double)]
    oldest_age_s: f64,
}

#[derive(Debug, Clone, PartialEq, QueryableByName)]
struct OldestJobs {
    #[diesel(sql_type = diesel::sql_types::Nullable<Double>)]
    waiting_s: Option<f64>,
    #[diesel(sql_type = diesel::sql_types::Nullable<Double>)]
    running_s: Option<f64>,
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
    /// Seconds since the oldest job not yet running (`pending` or
    /// `queued`) was created; `None` without one.
    pub oldest_waiting_job_age_s: Option<f64>,
    /// Seconds since the longest-running job started; `None` without one.
    pub oldest_running_job_age_s: Option<f64>,
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
            "SELECT job_type AS kind, status, sum(jobs)::int8 AS count
               FROM job_counts
              WHERE tenant_id = $1
              GROUP BY 1, 2
             HAVING sum(jobs) <> 0
              ORDER BY 1, 2",
        )
        .bind::<Int4, _>(tenant_id)
        .load::<Count>(conn)?;
        let outbox_pending = jobs
            .iter()
            .filter(|c| c.status == "pending")
            .map(|c| c.count)
            .sum();
        let backlog = diesel::sql_query(
            "SELECT COALESCE(GREATEST(EXTRACT(EPOCH FROM now() - min(scheduled_at)), 0), 0)::float8
                        AS oldest_age_s
               FROM etl_job_queue
              WHERE tenant_id = $1 AND status = 'pending'",
        )
        .bind::<Int4, _>(tenant_id)
        .get_result::<OldestPending>(conn)?;
        let oldest = diesel::sql_query(
            "SELECT (SELECT EXTRACT(EPOCH FROM LOCALTIMESTAMP - min(created_at))::float8
                       FROM etl_job_queue
                      WHERE tenant_id = $1 AND status IN ('pending', 'queued')) AS waiting_s,
                    (SELECT EXTRACT(EPOCH FROM LOCALTIMESTAMP - min(started_at))::float8
                       FROM etl_job_queue
                      WHERE tenant_id = $1 AND status = 'running') AS running_s",
        )
        .bind::<Int4, _>(tenant_id)
        .get_result::<OldestJobs>(conn)?;
        // The largest groups, each with one record's message (found through
        // the partial index of failed records, in no particular order).
        let failures = diesel::sql_query(
            "SELECT g.entity_type, NULLIF(g.code, '') AS code, g.count, s.sample
               FROM (SELECT entity_type, error_code AS code, sum(records)::int8 AS count
                       FROM raw_record_counts
                      WHERE tenant_id = $1 AND processing_status = 'failed'
                      GROUP BY 1, 2
                     HAVING sum(records) > 0
                      ORDER BY 3 DESC, 1, 2
                      LIMIT 100) AS g
               LEFT JOIN LATERAL (
                    SELECT left(r.error_details->>'message', 500) AS sample
                      FROM raw_extraction_data r
                     WHERE r.tenant_id = $1 AND r.processing_status = 'failed'
                       AND r.entity_type = g.entity_type
                       AND left(COALESCE(r.error_details->>'code', ''), 100) = g.code
                     LIMIT 1) AS s ON true
              ORDER BY 3 DESC, 1, 2",
        )
        .bind::<Int4, _>(tenant_id)
        .load::<FailureGroup>(conn)?;
        // Sessions run in UTC, the zone `loaded_at` is written in.
        let loaded_per_minute = diesel::sql_query(
            "WITH since AS (SELECT date_trunc('minute', LOCALTIMESTAMP) - interval '59 minutes' AS t),
                  loaded AS (
                    SELECT minute, sum(rows) AS rows
                      FROM loaded_minutes, since
                     WHERE tenant_id = $1 AND minute >= since.t
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
            outbox_pending,
            outbox_oldest_age_s: backlog.oldest_age_s,
            // Never negative, should a clock have stepped back.
            oldest_waiting_job_age_s: oldest.waiting_s.map(|s| s.max(0.0)),
            oldest_running_job_age_s: oldest.running_s.map(|s| s.max(0.0)),
            failures,
            loaded_per_minute,
        })
    })
}

/// Folds the counters of backends that have gone into shard 0 (which no
/// live backend writes), drops counters that came to zero and minutes
/// older than two hours; returns how many rows were folded. The janitor
/// runs it.
pub fn compact_counts(conn: &mut PgConnection) -> QueryResult<usize> {
    conn.transaction(|conn| {
        let mut folded = 0;
        for (table, keys, counter) in [
            (
                "raw_record_counts",
                "tenant_id, entity_type, processing_status, error_code",
                "records",
            ),
            ("job_counts", "tenant_id, job_type, status", "jobs"),
            ("loaded_minutes", "final_table, tenant_id, minute", "rows"),
        ] {
            folded += diesel::sql_query(format!(
                "WITH gone AS (
                    DELETE FROM {table}
                     WHERE shard <> 0
                       AND shard NOT IN (SELECT pid FROM pg_stat_activity WHERE pid IS NOT NULL)
                    RETURNING {keys}, {counter})
                 INSERT INTO {table} AS c ({keys}, shard, {counter})
                 SELECT {keys}, 0, sum({counter})
                   FROM gone
                  GROUP BY {keys}
                  ORDER BY {keys}
                 ON CONFLICT ({keys}, shard)
                 DO UPDATE SET {counter} = c.{counter} + EXCLUDED.{counter}"
            ))
            .execute(conn)?;
            diesel::sql_query(format!(
                "DELETE FROM {table} WHERE shard = 0 AND {counter} = 0"
            ))
            .execute(conn)?;
        }
        diesel::sql_query(
            "DELETE FROM loaded_minutes
              WHERE minute < date_trunc('minute', LOCALTIMESTAMP) - interval '2 hours'",
        )
        .execute(conn)?;
        Ok(folded)
    })
}
