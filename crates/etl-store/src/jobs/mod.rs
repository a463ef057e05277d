//! `etl_job_queue`: one row per job. The row is the job's truth (and its
//! outbox entry); queue messages only point at it.
//!
//! By role, as the machinery that uses them: this module holds the row,
//! the tenant's queries and the changes clients ask for (cancel, retry,
//! report); [`outbox`] what the relay does (lease, confirm, refuse);
//! [`lifecycle`] what workers and the rescuer do (claim, heartbeat,
//! complete, fail an attempt).

use crate::tenants::ActiveTenant;
use chrono::NaiveDateTime;
use diesel::prelude::*;
use etl_domain::{EntityType, JobPriority, JobStatus, JobType, PageLimit, TenantId};

use crate::json_text::JsonText;
use crate::schema::etl_job_queue as jobs;

pub mod fairness;
mod lifecycle;
mod outbox;

pub use lifecycle::{
    backend_pid, cancel_backends, claim, claim_next, complete, fail_attempt, hand_back, heartbeat,
    stale_running, AttemptBy,
};
pub use outbox::{
    fail_pending, find_outbox, lease_due, mark_queued, outbox_backlog, refuse_publication,
    release_lease, repend_stranded, Leased, OutboxJob,
};

#[derive(Debug, Clone, PartialEq, Queryable, Selectable, Identifiable)]
#[diesel(table_name = jobs, check_for_backend(diesel::pg::Pg))]
pub struct Job {
    pub id: i32,
    pub tenant_id: i32,
    pub job_type: String,
    pub entity_type: String,
    /// As PostgreSQL writes it back: JSON text, never a tree of binary
    /// floats (a client's extract payload keeps every digit).
    pub payload: JsonText,
    pub priority: Option<i32>,
    pub status: Option<String>,
    pub scheduled_at: Option<NaiveDateTime>,
    pub started_at: Option<NaiveDateTime>,
    pub completed_at: Option<NaiveDateTime>,
    pub error_details: Option<serde_json::Value>,
    pub retry_count: Option<i32>,
    pub max_retries: Option<i32>,
    pub created_at: NaiveDateTime,
    pub queued_at: Option<NaiveDateTime>,
    pub lease_until: Option<NaiveDateTime>,
    pub heartbeat_at: Option<NaiveDateTime>,
    pub worker: Option<String>,
    pub result: Option<serde_json::Value>,
    /// The `x-request-id` of the request that created the job.
    pub request_id: Option<String>,
}

impl Job {
    /// The job's status; a NULL (the seed's column is nullable) reads as the
    /// column's default, `pending`.
    pub fn status(&self) -> JobStatus {
        self.status
            .as_deref()
            .and_then(|s| s.parse().ok())
            .unwrap_or(JobStatus::Pending)
    }

    pub fn job_type(&self) -> Option<JobType> {
        self.job_type.parse().ok()
    }

    /// The job's id, typed.
    pub fn job_id(&self) -> etl_domain::JobId {
        etl_domain::JobId::new(self.id)
    }

    /// The tenant the job acts for (a worker acts for the job's tenant).
    pub fn tenant(&self) -> TenantId {
        TenantId::new(self.tenant_id)
    }
}

impl From<Job> for etl_domain::JobResponse {
    fn from(job: Job) -> Self {
        let status = job.status();
        etl_domain::JobResponse {
            id: job.id,
            tenant_id: job.tenant_id,
            job_type: job.job_type,
            entity_type: job.entity_type,
            payload: etl_domain::RawObject::from_text(job.payload.into_string())
                .unwrap_or_default(),
            priority: job.priority,
            status,
            scheduled_at: job.scheduled_at.map(|t| t.and_utc()),
            started_at: job.started_at.map(|t| t.and_utc()),
            completed_at: job.completed_at.map(|t| t.and_utc()),
            error_details: job.error_details,
            retry_count: job.retry_count,
            max_retries: job.max_retries,
            created_at: job.created_at.and_utc(),
            queued_at: job.queued_at.map(|t| t.and_utc()),
            heartbeat_at: job.heartbeat_at.map(|t| t.and_utc()),
            worker: job.worker,
            result: job.result,
            request_id: job.request_id,
        }
    }
}

#[derive(Debug, Clone, Insertable)]
#[diesel(table_name = jobs)]
pub struct NewJob {
    pub tenant_id: i32,
    pub job_type: String,
    pub entity_type: String,
    pub payload: serde_json::Value,
    pub priority: i32,
}

impl NewJob {
    pub fn new(
        tenant_id: i32,
        job_type: JobType,
        entity_type: &EntityType,
        payload: serde_json::Value,
        priority: JobPriority,
    ) -> Self {
        Self {
            tenant_id,
            job_type: job_type.as_str().to_owned(),
            entity_type: entity_type.as_str().to_owned(),
            payload,
            priority: priority.get(),
        }
    }
}

pub fn insert(conn: &mut PgConnection, new: &NewJob) -> QueryResult<Job> {
    diesel::insert_into(jobs::table)
        .values(new)
        .returning(Job::as_returning())
        .get_result(conn)
}

/// Inserts a job whose payload is JSON text already and answers its id
/// only: a load job's rows (about 1 MB) are serialised once, straight from
/// typed rows, and do not travel back as `insert` would return them.
pub fn insert_json(
    conn: &mut PgConnection,
    tenant_id: TenantId,
    job_type: JobType,
    entity_type: &EntityType,
    payload: &str,
    priority: JobPriority,
    request_id: Option<&str>,
) -> QueryResult<i32> {
    let tenant_id = tenant_id.get();
    use diesel::sql_types::{Int4, Text};
    #[derive(QueryableByName)]
    struct Inserted {
        #[diesel(sql_type = Int4)]
        id: i32,
    }
    let inserted: Inserted = diesel::sql_query(
        "INSERT INTO etl_job_queue (tenant_id, job_type, entity_type, payload, priority, request_id)
         VALUES ($1, $2, $3, $4::jsonb, $5, $6)
         RETURNING id",
    )
    .bind::<Int4, _>(tenant_id)
    .bind::<Text, _>(job_type.as_str())
    .bind::<Text, _>(entity_type.as_str())
    .bind::<Text, _>(payload)
    .bind::<Int4, _>(priority.get())
    .bind::<diesel::sql_types::Nullable<Text>, _>(request_id)
    .get_result(conn)?;
    Ok(inserted.id)
}

/// Inserts a job of the payload's type (which cannot disagree with it) and
/// answers its id. `request_id` is the creating request's `x-request-id`.
pub fn insert_payload(
    conn: &mut PgConnection,
    tenant_id: TenantId,
    entity_type: &EntityType,
    payload: &etl_domain::JobPayload,
    priority: JobPriority,
    request_id: Option<&str>,
) -> QueryResult<i32> {
    insert_json(
        conn,
        tenant_id,
        payload.job_type(),
        entity_type,
        &payload.to_text(),
        priority,
        request_id,
    )
}

/// How many bytes a load job's rows take as PostgreSQL writes them out
/// (which is how the relay puts them into the job's message).
pub fn load_rows_text_len(conn: &mut PgConnection, id: etl_domain::JobId) -> QueryResult<i64> {
    let id = id.get();
    use diesel::dsl::sql;
    use diesel::sql_types::BigInt;
    jobs::table
        .filter(jobs::id.eq(id))
        .select(sql::<BigInt>(
            "COALESCE(octet_length((payload->'transformed_data')::text), 0)::int8",
        ))
        .first(conn)
}

/// The tenant's job with this id; another tenant's job reads as `None`.
pub fn find_for_tenant(
    conn: &mut PgConnection,
    tenant: ActiveTenant,
    id: etl_domain::JobId,
) -> QueryResult<Option<Job>> {
    let id = id.get();
    let tenant_id = tenant.id().get();
    jobs::table
        .filter(jobs::id.eq(id))
        .filter(jobs::tenant_id.eq(tenant_id))
        .select(Job::as_select())
        .first(conn)
        .optional()
}

/// A page of the tenant's jobs, oldest first (newest first with
/// `newest_first`).
#[derive(Debug, Clone, Default)]
pub struct JobFilter {
    pub status: Option<JobStatus>,
    pub job_type: Option<JobType>,
    pub entity_type: Option<EntityType>,
    /// Keyset paging: only jobs with a larger id.
    pub after_id: Option<i32>,
    /// Keyset paging backwards: only jobs with a smaller id.
    pub before_id: Option<i32>,
    pub newest_first: bool,
    pub limit: PageLimit,
}

/// A page of the tenant's jobs (see [`JobFilter`]), load jobs without their
/// rows.
pub fn list_for_tenant(
    conn: &mut PgConnection,
    tenant: ActiveTenant,
    filter: &JobFilter,
) -> QueryResult<Vec<Job>> {
    let tenant_id = tenant.id().get();
    let mut query = jobs::table
        .filter(jobs::tenant_id.eq(tenant_id))
        .into_boxed();
    if let Some(status) = filter.status {
        query = query.filter(jobs::status.eq(status.as_str()));
    }
    if let Some(job_type) = filter.job_type {
        query = query.filter(jobs::job_type.eq(job_type.as_str()));
    }
    if let Some(entity_type) = &filter.entity_type {
        query = query.filter(jobs::entity_type.eq(entity_type.as_str()));
    }
    if let Some(after_id) = filter.after_id {
        query = query.filter(jobs::id.gt(after_id));
    }
    if let Some(before_id) = filter.before_id {
        query = query.filter(jobs::id.lt(before_id));
    }
    query = if filter.newest_first {
        query.order(jobs::id.desc())
    } else {
        query.order(jobs::id.asc())
    };
    query
        .limit(filter.limit.get())
        .select(columns_with(LISTED_PAYLOAD, LISTED_ERROR_DETAILS))
        .load(conn)
}

/// A listed job's payload: a load job's rows (up to megabytes each) are
/// replaced by `transformed_rows`, their count, so that a page stays small
/// (SPEC §5); `GET /jobs/{id}` shows them. A payload or `load_options`
/// over [`LISTED_VALUE_MAX_BYTES`] shows as `{"truncated": true, "bytes": N}`.
const LISTED_PAYLOAD: &str = "CASE WHEN job_type = 'load' \
      AND jsonb_typeof(payload->'transformed_data') = 'array' \
    THEN (payload - 'transformed_data' - 'load_options') \
         || jsonb_build_object('transformed_rows', jsonb_array_length(payload->'transformed_data')) \
         || CASE WHEN payload ? 'load_options' THEN jsonb_build_object('load_options', \
              CASE WHEN octet_length((payload->'load_options')::text) > 65536 \
              THEN jsonb_build_object('truncated', true, 'bytes', octet_length((payload->'load_options')::text)) \
              ELSE payload->'load_options' END) ELSE '{}'::jsonb END \
    WHEN octet_length(payload::text) > 65536 \
    THEN jsonb_build_object('truncated', true, 'bytes', octet_length(payload::text)) \
    ELSE payload END";

/// A listed job's `error_details` (a client's report may be large): over
/// [`LISTED_VALUE_MAX_BYTES`] it shows as `{"truncated": true, "bytes": N}`.
const LISTED_ERROR_DETAILS: &str = "CASE WHEN octet_length(error_details::text) > 65536 \
    THEN jsonb_build_object('truncated', true, 'bytes', octet_length(error_details::text)) \
    ELSE error_details END";

/// The largest payload, `load_options` or `error_details` a job list shows
/// whole (the literal in the statements above).
pub const LISTED_VALUE_MAX_BYTES: usize = 65536;

/// What a job status change requested by a client did.
#[derive(Debug, Clone, PartialEq)]
pub enum JobChange {
    /// No job of the tenant has this id.
    NotFound,
    /// The change is not allowed from the job's current status.
    Conflict { current: JobStatus },
    /// Only extract jobs take reports from outside; this one is of another
    /// type.
    NotReportable { job_type: String },
    /// Done; the job as it is now.
    Changed(Box<Job>),
}

fn locked_for_tenant(
    conn: &mut PgConnection,
    tenant_id: TenantId,
    id: etl_domain::JobId,
) -> QueryResult<Option<Job>> {
    let id = id.get();
    let tenant_id = tenant_id.get();
    jobs::table
        .filter(jobs::id.eq(id))
        .filter(jobs::tenant_id.eq(tenant_id))
        .select(Job::as_select())
        .for_update()
        .first(conn)
        .optional()
}

/// Cancels a job that has not started (`pending` or `queued`). A cancelled
/// job is never run: workers check the row before running. Call inside a
/// transaction.
pub fn cancel(
    conn: &mut PgConnection,
    tenant: ActiveTenant,
    id: etl_domain::JobId,
) -> QueryResult<JobChange> {
    let Some(job) = locked_for_tenant(conn, tenant.id(), id)? else {
        return Ok(JobChange::NotFound);
    };
    if !job.status().is_cancellable() {
        return Ok(JobChange::Conflict {
            current: job.status(),
        });
    }
    let job = diesel::update(jobs::table.find(id.get()))
        .set((
            jobs::status.eq(JobStatus::Cancelled.as_str()),
            jobs::completed_at.eq(diesel::dsl::now),
            jobs::lease_until.eq(None::<NaiveDateTime>),
        ))
        .returning(Job::as_returning())
        .get_result(conn)?;
    // A job that will never run must not keep its records `processing`,
    // where `/pipeline/process` would never take them again.
    covered_records_to(conn, id, CoveredRecords::Pending)?;
    Ok(JobChange::Changed(Box::new(job)))
}

/// What becomes of the raw records a transform or load job covers when it
/// will not run.
#[derive(Debug, Clone, Copy)]
pub enum CoveredRecords<'a> {
    /// Back to `pending` (the job was cancelled): a later
    /// `/pipeline/process` takes them again.
    Pending,
    /// `failed` with the job's error details (the job failed for good).
    Failed(&'a serde_json::Value),
}

/// Moves the raw records job `id` covers (a transform job's
/// `payload.raw_data_ids`, a load job's rows' `raw_data_id`s) that are
/// still `processing`, in the job's tenant, out of `processing`. Answers
/// how many moved.
pub fn covered_records_to(
    conn: &mut PgConnection,
    id: etl_domain::JobId,
    to: CoveredRecords<'_>,
) -> QueryResult<usize> {
    let id = id.get();
    use diesel::sql_types::{Int4, Jsonb, Nullable, Text};
    let (status, details) = match to {
        CoveredRecords::Pending => ("pending", None),
        CoveredRecords::Failed(details) => ("failed", Some(details)),
    };
    diesel::sql_query(
        "WITH job AS (SELECT tenant_id, payload FROM etl_job_queue WHERE id = $1),
              covered AS (
                  SELECT (e #>> '{}')::int4 AS id
                    FROM job, jsonb_array_elements(
                        CASE WHEN jsonb_typeof(job.payload->'raw_data_ids') = 'array'
                             THEN job.payload->'raw_data_ids' ELSE '[]'::jsonb END) AS e
                   WHERE jsonb_typeof(e) = 'number'
                  UNION
                  SELECT (e->>'raw_data_id')::int4
                    FROM job, jsonb_array_elements(
                        CASE WHEN jsonb_typeof(job.payload->'transformed_data') = 'array'
                             THEN job.payload->'transformed_data' ELSE '[]'::jsonb END) AS e
                   WHERE jsonb_typeof(e->'raw_data_id') = 'number')
         UPDATE raw_extraction_data r
            SET processing_status = $2,
                error_details = $3,
                processed_at = CASE WHEN $2 = 'failed' THEN now() END
           FROM job
          WHERE r.tenant_id = job.tenant_id
            AND r.processing_status = 'processing'
            AND r.id IN (SELECT id FROM covered)",
    )
    .bind::<Int4, _>(id)
    .bind::<Text, _>(status)
    .bind::<Nullable<Jsonb>, _>(details)
    .execute(conn)
}

/// Sends a failed job round again: back to `pending` (the relay republishes
/// it) with a fresh set of attempts. Any other status is a conflict. Call
/// inside a transaction.
pub fn retry(
    conn: &mut PgConnection,
    tenant: ActiveTenant,
    id: etl_domain::JobId,
) -> QueryResult<JobChange> {
    let Some(job) = locked_for_tenant(conn, tenant.id(), id)? else {
        return Ok(JobChange::NotFound);
    };
    if job.status() != JobStatus::Failed {
        return Ok(JobChange::Conflict {
            current: job.status(),
        });
    }
    let job = diesel::update(jobs::table.find(id.get()))
        .set((
            jobs::status.eq(JobStatus::Pending.as_str()),
            jobs::scheduled_at.eq(diesel::dsl::now),
            jobs::retry_count.eq(0),
            jobs::started_at.eq(None::<NaiveDateTime>),
            jobs::completed_at.eq(None::<NaiveDateTime>),
            jobs::queued_at.eq(None::<NaiveDateTime>),
            jobs::heartbeat_at.eq(None::<NaiveDateTime>),
            jobs::lease_until.eq(None::<NaiveDateTime>),
        ))
        .returning(Job::as_returning())
        .get_result(conn)?;
    Ok(JobChange::Changed(Box::new(job)))
}

/// A status reported by an external worker (the extraction service) on an
/// extract job, following [`JobStatus::accepts_report`]: `running` (from
/// `pending` or `queued` only, so two workers never both claim one job)
/// stamps `started_at`; `completed`/`failed` (from `running` only) stamp
/// `completed_at`. A failed report is final: it is not retried
/// automatically. Transform and load jobs refuse reports: the service runs
/// those itself. Times are the database's. Call inside a transaction.
pub fn report(
    conn: &mut PgConnection,
    tenant: ActiveTenant,
    id: etl_domain::JobId,
    status: JobStatus,
    error_details: Option<serde_json::Value>,
) -> QueryResult<JobChange> {
    use diesel::dsl::{now, sql};
    use diesel::sql_types::{Nullable, Timestamp};
    let Some(job) = locked_for_tenant(conn, tenant.id(), id)? else {
        return Ok(JobChange::NotFound);
    };
    let current = job.status();
    if job.job_type() != Some(JobType::Extract) {
        return Ok(JobChange::NotReportable {
            job_type: job.job_type,
        });
    }
    if !current.accepts_report(status) {
        return Ok(JobChange::Conflict { current });
    }
    let (started_at, completed_at) = if status == JobStatus::Running {
        ("now()", "NULL")
    } else {
        ("COALESCE(started_at, now())", "now()")
    };
    let job = diesel::update(jobs::table.find(id.get()))
        .set((
            jobs::status.eq(status.as_str()),
            jobs::started_at.eq(sql::<Nullable<Timestamp>>(started_at)),
            jobs::completed_at.eq(sql::<Nullable<Timestamp>>(completed_at)),
            jobs::heartbeat_at.eq(now),
            jobs::error_details.eq(error_details.or(job.error_details)),
            jobs::lease_until.eq(None::<NaiveDateTime>),
        ))
        .returning(Job::as_returning())
        .get_result(conn)?;
    Ok(JobChange::Changed(Box::new(job)))
}

/// A job's columns, in `Job`'s order, with `payload` and `error_details`
/// computed by the SQL given (over the row). A claimed load job leaves its
/// payload behind: its rows are loaded from the row itself
/// (`loaders::load_job_rows`), so shipping them to the worker would only
/// cost a large transfer and parse; a listed one shows the count of its
/// rows instead of them, and large values truncated.
#[allow(clippy::type_complexity)]
fn columns_with(
    payload: &'static str,
    error_details: &'static str,
) -> (
    jobs::id,
    jobs::tenant_id,
    jobs::job_type,
    jobs::entity_type,
    diesel::expression::SqlLiteral<diesel::sql_types::Jsonb>,
    jobs::priority,
    jobs::status,
    jobs::scheduled_at,
    jobs::started_at,
    jobs::completed_at,
    diesel::expression::SqlLiteral<diesel::sql_types::Nullable<diesel::sql_types::Jsonb>>,
    jobs::retry_count,
    jobs::max_retries,
    jobs::created_at,
    jobs::queued_at,
    jobs::lease_until,
    jobs::heartbeat_at,
    jobs::worker,
    jobs::result,
    jobs::request_id,
) {
    (
        jobs::id,
        jobs::tenant_id,
        jobs::job_type,
        jobs::entity_type,
        diesel::dsl::sql::<diesel::sql_types::Jsonb>(payload),
        jobs::priority,
        jobs::status,
        jobs::scheduled_at,
        jobs::started_at,
        jobs::completed_at,
        diesel::dsl::sql::<diesel::sql_types::Nullable<diesel::sql_types::Jsonb>>(error_details),
        jobs::retry_count,
        jobs::max_retries,
        jobs::created_at,
        jobs::queued_at,
        jobs::lease_until,
        jobs::heartbeat_at,
        jobs::worker,
        jobs::result,
        jobs::request_id,
    )
}

/// What became of a failed attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttemptOutcome {
    /// Back to `pending`, due again at the given time (the relay or a
    /// PostgreSQL-mode worker picks it up then).
    RetryAt(NaiveDateTime),
    /// Out of attempts (or not worth retrying): `failed` for good.
    Failed,
    /// The job was not the worker's any more; nothing changed.
    NotOwned,
}

/// The database's `now()` plus `delay` (a due time). The milliseconds are
/// an integer of ours, spliced in.
fn now_plus(
    delay: chrono::Duration,
) -> diesel::expression::SqlLiteral<diesel::sql_types::Nullable<diesel::sql_types::Timestamp>> {
    let ms = delay.num_milliseconds().max(0);
    diesel::dsl::sql(&format!("now() + interval '{ms} milliseconds'"))
}

/// Finds a job by id whatever its tenant (workers act for every tenant).
pub fn find(conn: &mut PgConnection, id: etl_domain::JobId) -> QueryResult<Option<Job>> {
    let id = id.get();
    jobs::table
        .find(id)
        .select(Job::as_select())
        .first(conn)
        .optional()
}

/// Jobs by status, for the metrics.
pub fn count_by_status(conn: &mut PgConnection) -> QueryResult<Vec<(Option<String>, i64)>> {
    use diesel::dsl::count_star;
    jobs::table
        .group_by(jobs::status)
        .select((jobs::status, count_star()))
        .load(conn)
}
