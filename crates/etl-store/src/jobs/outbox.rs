//! What the outbox relay does with job rows: lease the due ones, mark the
//! confirmed ones `queued`, give back or refuse the others.

use chrono::NaiveDateTime;
use diesel::prelude::*;
use etl_domain::{JobStatus, JobType};

use super::{covered_records_to, now_plus, AttemptOutcome, CoveredRecords};
use crate::schema::etl_job_queue as jobs;

/// A job as the relay publishes it: what its message needs, with the
/// payload as the JSON text PostgreSQL sends, so that a load job's rows
/// (about 1 MB) can be spliced into its message without being parsed.
#[derive(Debug, Clone, PartialEq, Queryable, Selectable)]
#[diesel(table_name = jobs, check_for_backend(diesel::pg::Pg))]
pub struct OutboxJob {
    pub id: i32,
    pub tenant_id: i32,
    pub job_type: String,
    pub entity_type: String,
    pub priority: Option<i32>,
    pub created_at: NaiveDateTime,
    #[diesel(
        select_expression = diesel::dsl::sql::<diesel::sql_types::Text>("payload::text"),
        select_expression_type = diesel::expression::SqlLiteral<diesel::sql_types::Text>
    )]
    pub payload: String,
}

/// One job in the relay's form (to publish it again by hand).
pub fn find_outbox(
    conn: &mut PgConnection,
    id: etl_domain::JobId,
) -> QueryResult<Option<OutboxJob>> {
    let id = id.get();
    jobs::table
        .filter(jobs::id.eq(id))
        .select(OutboxJob::as_select())
        .first(conn)
        .optional()
}

/// A relay's lease on the jobs it publishes: it holds them until `until`
/// (the database's clock), which also tells this round's rows from others.
#[derive(Debug, Clone, PartialEq)]
pub struct Leased {
    pub until: NaiveDateTime,
    pub jobs: Vec<OutboxJob>,
}

/// Takes up to `limit` due pending jobs for publishing, but no more
/// payload than about `max_bytes` (stored size; at least one job), and
/// leases them for `lease` (from the database's `now()`) so that no other
/// relay takes them meanwhile. Jobs of the given types only. The byte
/// budget keeps a backlog of large load jobs from being held in memory all
/// at once. Transform and load jobs come in fair order and within each
/// tenant's room under `max_in_flight` ([`super::fairness`]); extract jobs
/// (uncapped) most urgent first; both merged by priority.
pub fn lease_due(
    conn: &mut PgConnection,
    job_types: &[JobType],
    limit: i64,
    max_bytes: i64,
    lease: std::time::Duration,
    max_in_flight: Option<i32>,
) -> QueryResult<Leased> {
    use diesel::dsl::sql;
    use diesel::sql_types::{Integer, Timestamp};
    let uncapped = super::fairness::names_where_capped(job_types, false);
    let ms = i64::try_from(lease.as_millis()).unwrap_or(i64::MAX);
    conn.transaction(|conn| {
        let until: NaiveDateTime = diesel::select(sql::<Timestamp>(&format!(
            "(now() + interval '{ms} milliseconds')::timestamp"
        )))
        .get_result(conn)?;
        // (priority, place) of each candidate, in the order to publish.
        let mut order: Vec<(i32, i64, i32)> =
            super::fairness::fair_due(conn, job_types, limit, max_in_flight)?
                .into_iter()
                .map(|p| (p.priority, p.place, p.id))
                .collect();
        if !uncapped.is_empty() {
            let urgent: Vec<(i32, Option<i32>)> = jobs::table
                .filter(jobs::status.eq(JobStatus::Pending.as_str()))
                .filter(jobs::scheduled_at.le(diesel::dsl::now))
                .filter(jobs::job_type.eq_any(&uncapped))
                .filter(
                    jobs::lease_until
                        .is_null()
                        .or(jobs::lease_until.lt(diesel::dsl::now)),
                )
                .order((
                    jobs::priority.asc(),
                    jobs::scheduled_at.asc(),
                    jobs::id.asc(),
                ))
                .limit(limit)
                .select((jobs::id, jobs::priority))
                .load(conn)?;
            order.extend(
                urgent
                    .into_iter()
                    .zip(1_i64..)
                    .map(|((id, priority), place)| (priority.unwrap_or(5), place, id)),
            );
        }
        order.sort_by_key(|(priority, place, _)| (*priority, *place));
        order.truncate(usize::try_from(limit).unwrap_or(usize::MAX));
        let ids: Vec<i32> = order.iter().map(|(_, _, id)| *id).collect();
        // Locked (another relay's candidates are passed over), then put
        // back in the order above.
        let locked: Vec<(i32, i32)> = jobs::table
            .filter(jobs::id.eq_any(&ids))
            .filter(jobs::status.eq(JobStatus::Pending.as_str()))
            .filter(
                jobs::lease_until
                    .is_null()
                    .or(jobs::lease_until.lt(diesel::dsl::now)),
            )
            .select((jobs::id, sql::<Integer>("pg_column_size(payload)")))
            .for_update()
            .skip_locked()
            .load(conn)?;
        let rank: std::collections::HashMap<i32, usize> =
            ids.iter().enumerate().map(|(i, id)| (*id, i)).collect();
        let mut due = locked;
        due.sort_by_key(|(id, _)| rank.get(id).copied());
        let mut budget = max_bytes;
        let taken: Vec<i32> = due
            .iter()
            .enumerate()
            .take_while(|(i, (_, size))| {
                let fits = *i == 0 || i64::from(*size) <= budget;
                budget -= i64::from(*size);
                fits
            })
            .map(|(_, (id, _))| *id)
            .collect();
        if taken.is_empty() {
            return Ok(Leased {
                until,
                jobs: Vec::new(),
            });
        }
        let mut leased: Vec<OutboxJob> =
            diesel::update(jobs::table.filter(jobs::id.eq_any(&taken)))
                .set(jobs::lease_until.eq(until))
                .returning(OutboxJob::as_returning())
                .get_results(conn)?;
        // RETURNING follows no order; publish in the order chosen above.
        leased.sort_by_key(|job| rank.get(&job.id).copied());
        Ok(Leased {
            until,
            jobs: leased,
        })
    })
}

/// Records that the broker refused a leased job's message (a nack, or its
/// channel closed on it), like a failed attempt: due again after
/// `backoff` while `retry_count < max_retries`, then `failed` with
/// `error_details` (and the raw records it covers with it). Only a row
/// still under this lease changes. Call inside a transaction.
pub fn refuse_publication(
    conn: &mut PgConnection,
    id: etl_domain::JobId,
    lease_until: NaiveDateTime,
    error_details: &serde_json::Value,
    backoff: impl FnOnce(i32) -> chrono::Duration,
) -> QueryResult<AttemptOutcome> {
    use diesel::dsl::sql;
    use diesel::sql_types::Timestamp;
    let job: Option<(Option<i32>, Option<i32>)> = jobs::table
        .filter(jobs::id.eq(id.get()))
        .filter(jobs::status.eq(JobStatus::Pending.as_str()))
        .filter(jobs::lease_until.eq(lease_until))
        .select((jobs::retry_count, jobs::max_retries))
        .for_update()
        .first(conn)
        .optional()?;
    let Some((retries, max_retries)) = job else {
        return Ok(AttemptOutcome::NotOwned);
    };
    let (retries, max_retries) = (retries.unwrap_or(0), max_retries.unwrap_or(3));
    if retries >= max_retries {
        fail_pending(conn, id, error_details)?;
        return Ok(AttemptOutcome::Failed);
    }
    let attempt = retries + 1;
    let due: NaiveDateTime = diesel::update(jobs::table.find(id.get()))
        .set((
            jobs::retry_count.eq(attempt),
            jobs::scheduled_at.eq(now_plus(backoff(attempt))),
            jobs::error_details.eq(error_details),
            jobs::lease_until.eq(None::<NaiveDateTime>),
        ))
        .returning(sql::<Timestamp>("scheduled_at"))
        .get_result(conn)?;
    Ok(AttemptOutcome::RetryAt(due))
}

/// Marks published jobs `queued` once the broker confirmed them. Only rows
/// still under this relay's lease (`lease_until`) change: a job claimed by a
/// worker meanwhile (and perhaps already failed and pending again for its
/// next attempt) or cancelled is not the publication this confirm is for.
pub fn mark_queued(
    conn: &mut PgConnection,
    ids: &[i32],
    lease_until: NaiveDateTime,
) -> QueryResult<usize> {
    diesel::update(
        jobs::table
            .filter(jobs::id.eq_any(ids))
            .filter(jobs::status.eq(JobStatus::Pending.as_str()))
            .filter(jobs::lease_until.eq(lease_until)),
    )
    .set((
        jobs::status.eq(JobStatus::Queued.as_str()),
        jobs::queued_at.eq(diesel::dsl::now),
        jobs::lease_until.eq(None::<NaiveDateTime>),
    ))
    .execute(conn)
}

/// Gives leased jobs back (their publishing failed) so the next round
/// retries them. Only rows still under this lease change.
pub fn release_lease(
    conn: &mut PgConnection,
    ids: &[i32],
    lease_until: NaiveDateTime,
) -> QueryResult<usize> {
    diesel::update(
        jobs::table
            .filter(jobs::id.eq_any(ids))
            .filter(jobs::lease_until.eq(lease_until)),
    )
    .set(jobs::lease_until.eq(None::<NaiveDateTime>))
    .execute(conn)
}

/// Outbox figures: pending jobs and the age in seconds of the oldest one
/// (by the database's clock, like the times it is measured from).
pub fn outbox_backlog(conn: &mut PgConnection) -> QueryResult<(i64, f64)> {
    use diesel::dsl::{count_star, sql};
    use diesel::sql_types::Double;
    jobs::table
        .filter(jobs::status.eq(JobStatus::Pending.as_str()))
        .select((
            count_star(),
            sql::<Double>(
                "COALESCE(GREATEST(EXTRACT(EPOCH FROM now() - min(scheduled_at)), 0), 0)::float8",
            ),
        ))
        .first(conn)
}

/// Fails a pending job outright (its row cannot be published), and the raw
/// records it covers with it. Call inside a transaction.
pub fn fail_pending(
    conn: &mut PgConnection,
    id: etl_domain::JobId,
    error_details: &serde_json::Value,
) -> QueryResult<usize> {
    let failed = diesel::update(
        jobs::table
            .filter(jobs::id.eq(id.get()))
            .filter(jobs::status.eq(JobStatus::Pending.as_str())),
    )
    .set((
        jobs::status.eq(JobStatus::Failed.as_str()),
        jobs::completed_at.eq(diesel::dsl::now),
        jobs::error_details.eq(error_details),
        jobs::lease_until.eq(None::<NaiveDateTime>),
    ))
    .execute(conn)?;
    if failed > 0 {
        covered_records_to(conn, id, CoveredRecords::Failed(error_details))?;
    }
    Ok(failed)
}

/// Jobs the broker may have lost (SPEC §8): `queued` for longer than
/// `after` (since their last publication) with no worker having started
/// them go back to `pending`, so that the relay publishes them again.
/// Consumers ignore the second message of a job that runs or finished.
/// Returns their ids.
pub fn repend_stranded(
    conn: &mut PgConnection,
    job_types: &[JobType],
    after: std::time::Duration,
) -> QueryResult<Vec<i32>> {
    use diesel::dsl::sql;
    use diesel::sql_types::Bool;
    let types: Vec<&str> = job_types.iter().map(|t| t.as_str()).collect();
    let ms = i64::try_from(after.as_millis()).unwrap_or(i64::MAX);
    diesel::update(
        jobs::table
            .filter(jobs::status.eq(JobStatus::Queued.as_str()))
            .filter(jobs::job_type.eq_any(&types))
            .filter(sql::<Bool>(&format!(
                "queued_at < (now() - interval '{ms} milliseconds')::timestamp"
            ))),
    )
    .set((
        jobs::status.eq(JobStatus::Pending.as_str()),
        jobs::lease_until.eq(None::<NaiveDateTime>),
    ))
    .returning(jobs::id)
    .get_results(conn)
}
