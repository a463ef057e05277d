//! What workers and the rescuer do with job rows: claim, heartbeat,
//! complete, and record a failed attempt (times by the database's clock).

use chrono::NaiveDateTime;
use diesel::prelude::*;
use etl_domain::{JobStatus, JobType};

use super::{columns_with, covered_records_to, now_plus, AttemptOutcome, CoveredRecords, Job};
use crate::schema::etl_job_queue as jobs;

/// Claims a job for `worker`: `queued` (or still `pending`, when its
/// message outran the relay's bookkeeping) becomes `running`. `None` when
/// the job is not claimable (running elsewhere, finished, cancelled). A
/// load job comes back with an empty payload (see `claimed_columns`).
pub fn claim(
    conn: &mut PgConnection,
    id: etl_domain::JobId,
    worker: &str,
) -> QueryResult<Option<Job>> {
    let id = id.get();
    diesel::update(
        jobs::table
            .filter(jobs::id.eq(id))
            .filter(jobs::status.eq_any([JobStatus::Queued.as_str(), JobStatus::Pending.as_str()])),
    )
    .set((
        jobs::status.eq(JobStatus::Running.as_str()),
        jobs::started_at.eq(diesel::dsl::now),
        jobs::heartbeat_at.eq(diesel::dsl::now),
        jobs::worker.eq(worker),
        jobs::lease_until.eq(None::<NaiveDateTime>),
    ))
    .returning(columns_with(
        "CASE WHEN job_type = 'load' THEN '{}'::jsonb ELSE payload END",
        "error_details",
    ))
    .get_result(conn)
    .optional()
}

/// Claims the most urgent due job of the given types (PostgreSQL-only
/// mode): `FOR UPDATE SKIP LOCKED`, so concurrent workers never take the
/// same one.
pub fn claim_next(
    conn: &mut PgConnection,
    job_types: &[JobType],
    worker: &str,
) -> QueryResult<Option<Job>> {
    let types: Vec<&str> = job_types.iter().map(|t| t.as_str()).collect();
    conn.transaction(|conn| {
        let next: Option<i32> = jobs::table
            .filter(jobs::status.eq_any([JobStatus::Pending.as_str(), JobStatus::Queued.as_str()]))
            .filter(jobs::scheduled_at.le(diesel::dsl::now))
            .filter(jobs::job_type.eq_any(&types))
            .order((
                jobs::priority.asc(),
                jobs::scheduled_at.asc(),
                jobs::id.asc(),
            ))
            .select(jobs::id)
            .for_update()
            .skip_locked()
            .first(conn)
            .optional()?;
        match next {
            Some(id) => claim(conn, etl_domain::JobId::new(id), worker),
            None => Ok(None),
        }
    })
}

/// Refreshes the heartbeat of a job `worker` runs. `false` when the job is
/// no longer the worker's (it was rescued).
pub fn heartbeat(
    conn: &mut PgConnection,
    id: etl_domain::JobId,
    worker: &str,
) -> QueryResult<bool> {
    let id = id.get();
    let updated = diesel::update(
        jobs::table
            .filter(jobs::id.eq(id))
            .filter(jobs::status.eq(JobStatus::Running.as_str()))
            .filter(jobs::worker.eq(worker)),
    )
    .set(jobs::heartbeat_at.eq(diesel::dsl::now))
    .execute(conn)?;
    Ok(updated == 1)
}

/// Marks a job `worker` runs completed with its result. `false` when the job
/// is no longer the worker's: the caller must roll back its effects.
pub fn complete(
    conn: &mut PgConnection,
    id: etl_domain::JobId,
    worker: &str,
    result: &serde_json::Value,
) -> QueryResult<bool> {
    let id = id.get();
    let updated = diesel::update(
        jobs::table
            .filter(jobs::id.eq(id))
            .filter(jobs::status.eq(JobStatus::Running.as_str()))
            .filter(jobs::worker.eq(worker)),
    )
    .set((
        jobs::status.eq(JobStatus::Completed.as_str()),
        jobs::completed_at.eq(diesel::dsl::now),
        jobs::result.eq(result),
        jobs::error_details.eq(None::<serde_json::Value>),
    ))
    .execute(conn)?;
    Ok(updated == 1)
}

/// Who records a failed attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttemptBy<'a> {
    /// The worker running the job: only its own job changes.
    Worker(&'a str),
    /// The rescuer, for any worker's job whose heartbeat is older than
    /// this (checked again under the row's lock, so a heartbeat that came
    /// back meanwhile keeps the job running).
    Rescuer { stale_after: std::time::Duration },
}

/// `heartbeat_at` is older than `stale_after` by the database's clock (or
/// was never set). The milliseconds are an integer of ours, spliced in.
fn heartbeat_older_than(
    stale_after: std::time::Duration,
) -> diesel::expression::SqlLiteral<diesel::sql_types::Bool> {
    let ms = i64::try_from(stale_after.as_millis()).unwrap_or(i64::MAX);
    diesel::dsl::sql(&format!(
        "(heartbeat_at IS NULL OR heartbeat_at < now() - interval '{ms} milliseconds')"
    ))
}

/// Records a failed attempt of a running job: another attempt after
/// `backoff` (from the database's `now()`) while `retry_count <
/// max_retries` (and `retryable`), else `failed`, and the raw records it
/// covers with it (as `fail_pending` does for a job the relay fails). Call
/// inside a transaction.
pub fn fail_attempt(
    conn: &mut PgConnection,
    id: etl_domain::JobId,
    by: AttemptBy<'_>,
    error_details: &serde_json::Value,
    retryable: bool,
    backoff: impl FnOnce(i32) -> chrono::Duration,
) -> QueryResult<AttemptOutcome> {
    use diesel::dsl::sql;
    use diesel::sql_types::Timestamp;
    let job_id = id;
    let id = id.get();
    let running = jobs::table
        .filter(jobs::id.eq(id))
        .filter(jobs::status.eq(JobStatus::Running.as_str()));
    let job: Option<Job> = match by {
        AttemptBy::Worker(worker) => running
            .filter(jobs::worker.eq(worker))
            .select(Job::as_select())
            .for_update()
            .first(conn)
            .optional()?,
        AttemptBy::Rescuer { stale_after } => running
            .filter(heartbeat_older_than(stale_after))
            .select(Job::as_select())
            .for_update()
            .first(conn)
            .optional()?,
    };
    let Some(job) = job else {
        return Ok(AttemptOutcome::NotOwned);
    };
    let retries = job.retry_count.unwrap_or(0);
    let max_retries = job.max_retries.unwrap_or(3);
    if retryable && retries < max_retries {
        let attempt = retries + 1;
        let due: NaiveDateTime = diesel::update(jobs::table.find(id))
            .set((
                jobs::status.eq(JobStatus::Pending.as_str()),
                jobs::retry_count.eq(attempt),
                jobs::scheduled_at.eq(now_plus(backoff(attempt))),
                jobs::error_details.eq(error_details),
                jobs::heartbeat_at.eq(None::<NaiveDateTime>),
                jobs::queued_at.eq(None::<NaiveDateTime>),
            ))
            .returning(sql::<Timestamp>("scheduled_at"))
            .get_result(conn)?;
        Ok(AttemptOutcome::RetryAt(due))
    } else {
        diesel::update(jobs::table.find(id))
            .set((
                jobs::status.eq(JobStatus::Failed.as_str()),
                jobs::completed_at.eq(diesel::dsl::now),
                jobs::error_details.eq(error_details),
            ))
            .execute(conn)?;
        covered_records_to(conn, job_id, CoveredRecords::Failed(error_details))?;
        Ok(AttemptOutcome::Failed)
    }
}

/// Running jobs of the given types whose heartbeat (by the database's
/// clock) is older than `stale_after`.
pub fn stale_running(
    conn: &mut PgConnection,
    job_types: &[JobType],
    stale_after: std::time::Duration,
) -> QueryResult<Vec<i32>> {
    let types: Vec<&str> = job_types.iter().map(|t| t.as_str()).collect();
    jobs::table
        .filter(jobs::status.eq(JobStatus::Running.as_str()))
        .filter(jobs::job_type.eq_any(&types))
        .filter(heartbeat_older_than(stale_after))
        .select(jobs::id)
        .load(conn)
}

/// Gives a job `worker` runs back, as a shutdown does when its grace ran
/// out (SPEC §8): `queued` again (its message is returned to the broker;
/// in PostgreSQL mode workers claim `queued` rows too), with its attempt
/// not counted. `false` when the job is no longer the worker's.
pub fn hand_back(
    conn: &mut PgConnection,
    id: etl_domain::JobId,
    worker: &str,
) -> QueryResult<bool> {
    let updated = diesel::update(
        jobs::table
            .filter(jobs::id.eq(id.get()))
            .filter(jobs::status.eq(JobStatus::Running.as_str()))
            .filter(jobs::worker.eq(worker)),
    )
    .set((
        jobs::status.eq(JobStatus::Queued.as_str()),
        jobs::started_at.eq(None::<NaiveDateTime>),
        jobs::heartbeat_at.eq(None::<NaiveDateTime>),
        jobs::worker.eq(None::<String>),
        jobs::queued_at.eq(diesel::dsl::now),
    ))
    .execute(conn)?;
    Ok(updated == 1)
}

/// The backend process id of this session (to cancel its statement from
/// another session).
pub fn backend_pid(conn: &mut PgConnection) -> QueryResult<i32> {
    diesel::select(diesel::dsl::sql::<diesel::sql_types::Integer>(
        "pg_backend_pid()",
    ))
    .get_result(conn)
}

/// Cancels the running statement of each backend (`pg_cancel_backend`);
/// how many were signalled.
pub fn cancel_backends(conn: &mut PgConnection, pids: &[i32]) -> QueryResult<usize> {
    use diesel::sql_types::{Array, Integer};
    #[derive(QueryableByName)]
    struct Cancelled {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        n: i64,
    }
    let cancelled: Cancelled = diesel::sql_query(
        "SELECT count(*) FILTER (WHERE pg_cancel_backend(pid)) AS n FROM unnest($1::int4[]) AS pid",
    )
    .bind::<Array<Integer>, _>(pids)
    .get_result(conn)?;
    Ok(usize::try_from(cancelled.n).unwrap_or(0))
}
