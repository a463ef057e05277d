//! No tenant starves another (SPEC §12). Transform and load jobs (the jobs
//! this service runs; extract jobs are the extraction service's) are
//! capped per tenant: at most `max_in_flight` of a tenant's run at once
//! across the deployment. A claim checks the cap under a per-tenant lock,
//! so concurrent claims never pass it; a job whose tenant is at its cap
//! goes back to the outbox (`pending`, its place and attempts unchanged).
//! The relay publishes, within a priority, round-robin across the tenants
//! with due jobs, and no more of a tenant's jobs than it has room for: its
//! queued and running jobs together stay within twice its cap. So the
//! broker never holds a deep backlog of one tenant in front of another's
//! jobs, while a cap's worth waits ready: a worker holding a message whose
//! tenant is at its cap claims it the moment a slot frees (see
//! `etl_jobs::worker`), rather than wait for the relay to publish anew.
//!
//! `max_in_flight` is `ETL_TENANT_MAX_IN_FLIGHT` when set, else half the
//! worker slots the live processes announce in `etl_worker_slots`, at
//! least 1.

use diesel::prelude::*;
use diesel::sql_types::{Array, Bool, Double, Int4, Int8, Nullable, Text};
use etl_domain::{JobStatus, JobType};

use super::{claim, Job};
use crate::schema::etl_job_queue as jobs;

/// First key of the per-tenant claim locks (`pg_advisory_xact_lock(int4,
/// int4)`, the second key being the tenant's id): "ETLF".
const CLAIM_LOCK_SPACE: i32 = 0x4554_4C46;

/// The cap in SQL: `$n` (`ETL_TENANT_MAX_IN_FLIGHT`) or half the live
/// worker slots, at least 1.
fn cap_sql(n: usize) -> String {
    format!(
        "COALESCE(${n}::int4, (SELECT GREATEST(1, COALESCE(sum(slots), 0)::int4 / 2)
                                  FROM etl_worker_slots WHERE expires_at > clock_timestamp()))"
    )
}

/// Whether jobs of this type count against a tenant's cap.
pub fn is_capped(job_type: JobType) -> bool {
    job_type != JobType::Extract
}

/// The names of the capped (or, with `capped` false, the uncapped) types
/// among `job_types`.
pub fn names_where_capped(job_types: &[JobType], capped: bool) -> Vec<&'static str> {
    job_types
        .iter()
        .filter(|t| is_capped(**t) == capped)
        .map(|t| t.as_str())
        .collect()
}

/// Says that the process `holder` runs `slots` worker slots, for `ttl_s`
/// seconds (renewed by a live process before then).
pub fn announce_slots(
    conn: &mut PgConnection,
    holder: &str,
    slots: i32,
    ttl_s: f64,
) -> QueryResult<()> {
    diesel::sql_query(
        "INSERT INTO etl_worker_slots AS w (holder, slots, expires_at)
         VALUES ($1, $2, clock_timestamp() + make_interval(secs => $3))
         ON CONFLICT (holder) DO UPDATE SET slots = EXCLUDED.slots, expires_at = EXCLUDED.expires_at",
    )
    .bind::<Text, _>(holder)
    .bind::<Int4, _>(slots)
    .bind::<Double, _>(ttl_s)
    .execute(conn)?;
    Ok(())
}

/// Takes `holder`'s slots out (a graceful stop), and forgets the rows of
/// processes long gone.
pub fn withdraw_slots(conn: &mut PgConnection, holder: &str) -> QueryResult<()> {
    diesel::sql_query(
        "DELETE FROM etl_worker_slots
          WHERE holder = $1 OR expires_at < clock_timestamp() - interval '1 day'",
    )
    .bind::<Text, _>(holder)
    .execute(conn)?;
    Ok(())
}

/// The cap in force now: `max_in_flight`, else half the live slots.
pub fn tenant_cap(conn: &mut PgConnection, max_in_flight: Option<i32>) -> QueryResult<i32> {
    #[derive(QueryableByName)]
    struct Cap {
        #[diesel(sql_type = Int4)]
        cap: i32,
    }
    let cap: Cap = diesel::sql_query(format!("SELECT {} AS cap", cap_sql(1)))
        .bind::<Nullable<Int4>, _>(max_in_flight)
        .get_result(conn)?;
    Ok(cap.cap)
}

/// What a claim under the tenant cap did.
#[derive(Debug, Clone, PartialEq)]
pub enum CapClaim {
    /// The job is `running`, this worker's.
    Claimed(Box<Job>),
    /// Not claimable (running elsewhere, finished, cancelled, unknown).
    NotClaimable,
    /// Its tenant runs as many jobs as the cap allows. With `give_back`,
    /// the job is back in the outbox (`pending`), to be published again
    /// when there is room; without, it is left as it was.
    TenantBusy,
}

/// Claims a job for `worker` (as [`claim`]) unless its tenant already runs
/// `max_in_flight` capped jobs (see the module's doc); then, with
/// `give_back`, gives it back to the outbox. Runs in its own transaction.
pub fn claim_within_cap(
    conn: &mut PgConnection,
    id: etl_domain::JobId,
    worker: &str,
    max_in_flight: Option<i32>,
    give_back: bool,
) -> QueryResult<CapClaim> {
    conn.transaction(|conn| {
        let job: Option<(i32, String)> = jobs::table
            .filter(jobs::id.eq(id.get()))
            .filter(jobs::status.eq_any([JobStatus::Queued.as_str(), JobStatus::Pending.as_str()]))
            .select((jobs::tenant_id, jobs::job_type))
            .first(conn)
            .optional()?;
        let Some((tenant_id, job_type)) = job else {
            return Ok(CapClaim::NotClaimable);
        };
        let capped = job_type.parse().map(is_capped).unwrap_or(true);
        if capped && tenant_at_cap(conn, tenant_id, max_in_flight)? {
            if !give_back {
                return Ok(CapClaim::TenantBusy);
            }
            diesel::update(jobs::table.filter(jobs::id.eq(id.get())).filter(
                jobs::status.eq_any([JobStatus::Queued.as_str(), JobStatus::Pending.as_str()]),
            ))
            .set((
                jobs::status.eq(JobStatus::Pending.as_str()),
                jobs::queued_at.eq(None::<chrono::NaiveDateTime>),
                jobs::lease_until.eq(None::<chrono::NaiveDateTime>),
            ))
            .execute(conn)?;
            return Ok(CapClaim::TenantBusy);
        }
        Ok(match claim(conn, id, worker)? {
            Some(job) => CapClaim::Claimed(Box::new(job)),
            None => CapClaim::NotClaimable,
        })
    })
}

/// Takes the tenant's claim lock (to the transaction's end) and answers
/// whether it runs `max_in_flight` capped jobs already.
fn tenant_at_cap(
    conn: &mut PgConnection,
    tenant_id: i32,
    max_in_flight: Option<i32>,
) -> QueryResult<bool> {
    #[derive(QueryableByName)]
    struct AtCap {
        #[diesel(sql_type = Bool)]
        at_cap: bool,
    }
    diesel::sql_query("SELECT pg_advisory_xact_lock($1, $2)")
        .bind::<Int4, _>(CLAIM_LOCK_SPACE)
        .bind::<Int4, _>(tenant_id)
        .execute(conn)?;
    let at: AtCap = diesel::sql_query(format!(
        "SELECT (SELECT count(*) FROM etl_job_queue
                  WHERE tenant_id = $2 AND status = 'running' AND job_type <> 'extract') >= {}
                AS at_cap",
        cap_sql(1)
    ))
    .bind::<Nullable<Int4>, _>(max_in_flight)
    .bind::<Int4, _>(tenant_id)
    .get_result(conn)?;
    Ok(at.at_cap)
}

/// A due job picked in fair order: its place among the tenant's (1 for its
/// most urgent) orders it after every tenant's more urgent ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq, QueryableByName)]
pub struct FairPick {
    #[diesel(sql_type = Int4)]
    pub id: i32,
    #[diesel(sql_type = Int4)]
    pub priority: i32,
    #[diesel(sql_type = Int8)]
    pub place: i64,
    #[diesel(sql_type = Int4)]
    pub tenant_id: i32,
}

/// The tenants with pending capped jobs (one index probe each), and each
/// one's most urgent due jobs, no more than `room` of them (`room`: an SQL
/// expression over `t.tenant_id` and `cap.n`), in fair order: by priority,
/// then place within the tenant, then tenant.
fn fair_picks_sql(room: &str, due: &str) -> String {
    format!(
        "WITH RECURSIVE cap AS (SELECT {cap} AS n),
         tenants AS (
             (SELECT tenant_id FROM etl_job_queue
               WHERE status = 'pending' AND job_type <> 'extract'
               ORDER BY tenant_id LIMIT 1)
             UNION ALL
             SELECT (SELECT j.tenant_id FROM etl_job_queue j
                      WHERE j.status = 'pending' AND j.job_type <> 'extract'
                        AND j.tenant_id > t.tenant_id
                      ORDER BY j.tenant_id LIMIT 1)
               FROM tenants t WHERE t.tenant_id IS NOT NULL),
         rooms AS (
             SELECT t.tenant_id, GREATEST({room}, 0) AS room
               FROM tenants t, cap WHERE t.tenant_id IS NOT NULL)
         SELECT d.id, d.priority, d.place, r.tenant_id
           FROM rooms r, LATERAL (
                SELECT j.id, COALESCE(j.priority, 5) AS priority,
                       row_number() OVER (ORDER BY j.priority, j.scheduled_at, j.id) AS place
                  FROM etl_job_queue j
                 WHERE j.tenant_id = r.tenant_id AND j.status = 'pending'
                   AND j.job_type <> 'extract' AND j.job_type = ANY($2)
                   AND j.scheduled_at <= now() {due}
                 ORDER BY j.priority, j.scheduled_at, j.id
                 LIMIT r.room) AS d
          ORDER BY d.priority, d.place, r.tenant_id
          LIMIT $3",
        cap = cap_sql(1),
    )
}

/// For the relay: up to `limit` due, unleased capped jobs of `job_types`
/// in fair order, no more of a tenant's than its room: twice the cap less
/// its queued and running capped jobs.
pub fn fair_due(
    conn: &mut PgConnection,
    job_types: &[JobType],
    limit: i64,
    max_in_flight: Option<i32>,
) -> QueryResult<Vec<FairPick>> {
    let types = names_where_capped(job_types, true);
    if types.is_empty() {
        return Ok(Vec::new());
    }
    diesel::sql_query(fair_picks_sql(
        "2 * cap.n - (SELECT count(*) FROM etl_job_queue b
                   WHERE b.tenant_id = t.tenant_id AND b.status IN ('queued', 'running')
                     AND b.job_type <> 'extract')",
        "AND (j.lease_until IS NULL OR j.lease_until < now())",
    ))
    .bind::<Nullable<Int4>, _>(max_in_flight)
    .bind::<Array<Text>, _>(&types)
    .bind::<Int8, _>(limit)
    .load(conn)
}

/// PostgreSQL mode: claims for `worker` the due capped job of `job_types`
/// that comes first in fair order among the tenants under their cap, or
/// else the most urgent due uncapped one (extract jobs).
pub fn claim_next_fair(
    conn: &mut PgConnection,
    job_types: &[JobType],
    worker: &str,
    max_in_flight: Option<i32>,
) -> QueryResult<Option<Job>> {
    let capped = names_where_capped(job_types, true);
    if !capped.is_empty() {
        // A handful of candidates (the first of each tenant with room), so
        // that a candidate another worker holds is passed over.
        let picks: Vec<FairPick> = diesel::sql_query(fair_picks_sql(
            "LEAST(1, cap.n - (SELECT count(*) FROM etl_job_queue b
                                WHERE b.tenant_id = t.tenant_id AND b.status = 'running'
                                  AND b.job_type <> 'extract'))",
            "",
        ))
        .bind::<Nullable<Int4>, _>(max_in_flight)
        .bind::<Array<Text>, _>(&capped)
        .bind::<Int8, _>(8_i64)
        .load(conn)?;
        for pick in picks {
            let id = etl_domain::JobId::new(pick.id);
            match claim_within_cap(conn, id, worker, max_in_flight, false)? {
                CapClaim::Claimed(job) => return Ok(Some(*job)),
                CapClaim::NotClaimable | CapClaim::TenantBusy => continue,
            }
        }
    }
    let uncapped: Vec<JobType> = job_types
        .iter()
        .copied()
        .filter(|t| !is_capped(*t))
        .collect();
    if uncapped.is_empty() {
        return Ok(None);
    }
    super::claim_next(conn, &uncapped, worker)
}
