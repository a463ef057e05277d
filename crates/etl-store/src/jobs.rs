//! `etl_job_queue`: one row per job. The row is the job's truth (and its
//! outbox entry); queue messages only point at it.

use chrono::NaiveDateTime;
use diesel::prelude::*;
use etl_domain::{EntityType, JobPriority, JobStatus, JobType, PageLimit};

use crate::schema::etl_job_queue as jobs;

#[derive(Debug, Clone, PartialEq, Queryable, Selectable, Identifiable)]
#[diesel(table_name = jobs, check_for_backend(diesel::pg::Pg))]
pub struct Job {
    pub id: i32,
    pub tenant_id: i32,
    pub job_type: String,
    pub entity_type: String,
    pub payload: serde_json::Value,
    pub priority: Option<i32>,
    pub status: Option<String>,
    pub scheduled_at: Option<NaiveDateTime>,
    pub started_at: Option<NaiveDateTime>,
    pub completed_at: Option<NaiveDateTime>,
    pub error_details: Option<serde_json::Value>,
    pub retry_count: Option<i32>,
    pub max_retries: Option<i32>,
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

/// The tenant's job with this id; another tenant's job reads as `None`.
pub fn find_for_tenant(
    conn: &mut PgConnection,
    tenant_id: i32,
    id: i32,
) -> QueryResult<Option<Job>> {
    jobs::table
        .filter(jobs::id.eq(id))
        .filter(jobs::tenant_id.eq(tenant_id))
        .select(Job::as_select())
        .first(conn)
        .optional()
}

/// A page of the tenant's jobs, oldest first.
#[derive(Debug, Clone, Default)]
pub struct JobFilter {
    pub status: Option<JobStatus>,
    pub job_type: Option<JobType>,
    pub entity_type: Option<EntityType>,
    pub after_id: Option<i32>,
    pub limit: PageLimit,
}

pub fn list_for_tenant(
    conn: &mut PgConnection,
    tenant_id: i32,
    filter: &JobFilter,
) -> QueryResult<Vec<Job>> {
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
    query
        .order(jobs::id.asc())
        .limit(filter.limit.get())
        .select(Job::as_select())
        .load(conn)
}
