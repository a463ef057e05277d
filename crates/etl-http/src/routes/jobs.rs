//! Job routes (SPEC §5): reading jobs and steering them (`/jobs…`: list,
//! get, retry, cancel, an external worker's report). The routes that create
//! jobs are in `pipeline`.

use actix_web::{web, HttpResponse};
use etl_domain::{EntityType, JobResponse, JobStatus, JobType, UpdateJobStatusRequest};
use etl_store::jobs::{self, JobChange, JobFilter};
use etl_store::tenants::ActiveTenant;
use etl_store::{Connection as _, PgConnection};
use serde::Deserialize;

use crate::blocking;
use crate::error::{ApiError, ErrorBody};
use crate::extract::{JsonBody, Tenant};
use crate::query::{self, parse_with, Fields};
use crate::state::AppState;
use crate::tenancy::{activate, blocking_as};

/// Query of `GET /jobs`.
#[derive(Debug, Deserialize)]
pub struct JobsQuery {
    status: Option<String>,
    job_type: Option<String>,
    entity_type: Option<String>,
    limit: Option<String>,
    after_id: Option<String>,
    before_id: Option<String>,
    order: Option<String>,
}

impl JobsQuery {
    fn parse(self) -> Result<JobFilter, ApiError> {
        let mut fields = Fields::default();
        let status = fields.take(
            "status",
            parse_with(self.status, |s| s.parse::<JobStatus>()),
        );
        let job_type = fields.take(
            "job_type",
            parse_with(self.job_type, |s| s.parse::<JobType>()),
        );
        let entity_type = fields.take(
            "entity_type",
            parse_with(self.entity_type, EntityType::parse),
        );
        let limit = fields.take("limit", query::limit(self.limit));
        let after_id = fields.take("after_id", query::id(self.after_id));
        let before_id = fields.take("before_id", query::id(self.before_id));
        let newest_first = fields.take(
            "order",
            parse_with(self.order, |o| match o.as_str() {
                "asc" => Ok(false),
                "desc" => Ok(true),
                other => Err(format!("`{other}` is not one of: asc desc")),
            }),
        );
        fields.finish()?;
        Ok(JobFilter {
            status,
            job_type,
            entity_type,
            after_id,
            before_id,
            newest_first: newest_first.unwrap_or(false),
            limit: limit.unwrap_or_default(),
        })
    }
}

/// `GET /jobs` → the tenant's jobs, oldest first.
#[utoipa::path(
    get, path = "/api/v1/etl/jobs", tag = "jobs", operation_id = "list_jobs",
    params(
        ("status" = Option<JobStatus>, Query, description = "Only jobs in this status"),
        ("job_type" = Option<JobType>, Query, description = "extract, transform or load"),
        ("entity_type" = Option<etl_domain::EntityType>, Query, description = "Only jobs of this entity type"),
        ("limit" = Option<etl_domain::PageLimit>, Query, description = "1–1000, default 100"),
        ("after_id" = Option<i32>, Query, description = "Keyset paging: only ids above this"),
        ("before_id" = Option<i32>, Query, description = "Keyset paging backwards: only ids below this"),
        ("order" = Option<String>, Query, description = "asc (default: oldest first) or desc (newest first)"),
    ),
    responses(
        (status = 200, description = "Jobs, oldest first (newest first with order=desc)", body = Vec<JobResponse>),
        (status = 422, description = "A query parameter is invalid", body = ErrorBody),
    ),
    security(("bearer" = [])),
)]
pub async fn list(
    state: web::Data<AppState>,
    tenant: Tenant,
    query: web::Query<JobsQuery>,
) -> Result<HttpResponse, ApiError> {
    let filter = query.into_inner().parse()?;
    let rows = blocking_as(&state.pool, &tenant, move |conn, tenant| {
        Ok(jobs::list_for_tenant(conn, tenant, &filter)?)
    })
    .await?;
    crate::bounded::json_list(
        rows.into_iter().map(JobResponse::from),
        state.max_response_bytes,
    )
}

/// `GET /jobs/{id}` → the job.
#[utoipa::path(
    get, path = "/api/v1/etl/jobs/{id}", tag = "jobs", operation_id = "get_job",
    params(("id" = i32, Path, description = "Job id")),
    responses(
        (status = 200, description = "The job", body = JobResponse),
        (status = 404, description = "No such job of this tenant", body = ErrorBody),
    ),
    security(("bearer" = [])),
)]
pub async fn get(
    state: web::Data<AppState>,
    tenant: Tenant,
    id: web::Path<i32>,
) -> Result<HttpResponse, ApiError> {
    let id = id.into_inner();
    let job = blocking_as(&state.pool, &tenant, move |conn, tenant| {
        jobs::find_for_tenant(conn, tenant, etl_domain::JobId::new(id))?
            .ok_or_else(|| ApiError::not_found(&format!("Job {id}")))
    })
    .await?;
    Ok(HttpResponse::Ok().json(JobResponse::from(job)))
}

/// Runs a status change and turns its outcome into an answer.
async fn change<F>(
    state: &AppState,
    tenant: Tenant,
    id: i32,
    what: String,
    work: F,
) -> Result<HttpResponse, ApiError>
where
    F: FnOnce(&mut PgConnection, ActiveTenant) -> Result<JobChange, etl_store::QueryError>
        + Send
        + 'static,
{
    let outcome = blocking(&state.pool, move |conn| {
        conn.transaction(|conn| {
            let active = activate(conn, &tenant)?;
            Ok::<_, ApiError>(work(conn, active)?)
        })
    })
    .await?;
    match outcome {
        JobChange::NotFound => Err(ApiError::not_found(&format!("Job {id}"))),
        JobChange::Conflict { current } => Err(ApiError::conflict(format!(
            "Cannot {what} a job that is {current}"
        ))),
        JobChange::NotReportable { job_type } => Err(ApiError::conflict(format!(
            "Cannot report on a {job_type} job: only extract jobs take reports; the service runs the others itself"
        ))),
        JobChange::Changed(job) => {
            if job.status() == JobStatus::Pending {
                state.jobs_created.notify_one();
            }
            Ok(HttpResponse::Ok().json(JobResponse::from(*job)))
        }
    }
}

/// `POST /jobs/{id}/retry` → a failed job goes back to pending.
#[utoipa::path(
    post, path = "/api/v1/etl/jobs/{id}/retry", tag = "jobs",
    params(("id" = i32, Path, description = "Job id")),
    responses(
        (status = 200, description = "Pending again; it will be republished", body = JobResponse),
        (status = 404, description = "No such job of this tenant", body = ErrorBody),
        (status = 409, description = "Only a failed job can be retried", body = ErrorBody),
    ),
    security(("bearer" = [])),
)]
pub async fn retry(
    state: web::Data<AppState>,
    tenant: Tenant,
    id: web::Path<i32>,
) -> Result<HttpResponse, ApiError> {
    let id = id.into_inner();
    change(
        &state,
        tenant,
        id,
        "retry".to_owned(),
        move |conn, tenant| jobs::retry(conn, tenant, etl_domain::JobId::new(id)),
    )
    .await
}

/// `POST /jobs/{id}/cancel` → a job that has not started is cancelled; the
/// raw records it covered go back to `pending`.
#[utoipa::path(
    post, path = "/api/v1/etl/jobs/{id}/cancel", tag = "jobs",
    params(("id" = i32, Path, description = "Job id")),
    responses(
        (status = 200, description = "Cancelled; it will never run", body = JobResponse),
        (status = 404, description = "No such job of this tenant", body = ErrorBody),
        (status = 409, description = "The job is running or finished", body = ErrorBody),
    ),
    security(("bearer" = [])),
)]
pub async fn cancel(
    state: web::Data<AppState>,
    tenant: Tenant,
    id: web::Path<i32>,
) -> Result<HttpResponse, ApiError> {
    let id = id.into_inner();
    change(
        &state,
        tenant,
        id,
        "cancel".to_owned(),
        move |conn, tenant| jobs::cancel(conn, tenant, etl_domain::JobId::new(id)),
    )
    .await
}

/// `PUT /jobs/{id}/status` → an external worker reports progress.
#[utoipa::path(
    put, path = "/api/v1/etl/jobs/{id}/status", tag = "jobs",
    params(("id" = i32, Path, description = "Job id")),
    request_body = UpdateJobStatusRequest,
    responses(
        (status = 200, description = "Recorded", body = JobResponse),
        (status = 404, description = "No such job of this tenant", body = ErrorBody),
        (status = 409, description = "Not an extract job, or the report does not follow from its status (running only from pending or queued, completed or failed only from running)", body = ErrorBody),
        (status = 422, description = "Status is not running, completed or failed", body = ErrorBody),
    ),
    security(("bearer" = [])),
)]
pub async fn report(
    state: web::Data<AppState>,
    tenant: Tenant,
    id: web::Path<i32>,
    JsonBody(request): JsonBody<UpdateJobStatusRequest>,
) -> Result<HttpResponse, ApiError> {
    let id = id.into_inner();
    let status = JobStatus::from(request.status);
    change(
        &state,
        tenant,
        id,
        format!("report {status} on"),
        move |conn, tenant| {
            jobs::report(
                conn,
                tenant,
                etl_domain::JobId::new(id),
                status,
                request.error_details,
            )
        },
    )
    .await
}
