//! Pipeline routes (SPEC §5): the routes that create jobs — `/pipeline`
//! (extract), `/pipeline/process` and `/transform` (transform), `/load`. A
//! job is a row of `etl_job_queue` written in the same transaction as the
//! work that creates it; the relay publishes it afterwards (transactional
//! outbox).

use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use etl_domain::IntegrationId;
use etl_domain::{
    BatchSize, ETLPipelineRequest, JobPayload, JobPriority, JobQueuedResponse, JobsQueuedResponse,
    LoadRequest, PipelineProcessRequest, ReplayRequest, TransformRequest, TransformerKind,
};
use etl_pipeline as pipeline;
use etl_store::jobs;
use etl_store::raw_records::{Backlog, BacklogScope};
use etl_store::tenants::ActiveTenant;
use etl_store::{integrations, raw_records, Connection as _, PgConnection};

use crate::blocking;
use crate::error::{ApiError, ErrorBody, ErrorCode, FieldError};
use crate::extract::{JsonBody, Tenant};
use crate::query::Fields;
use crate::request_id::RequestId;
use crate::state::AppState;
use crate::tenancy::{activate, blocking_as, unusable_integration};

/// Writes jobs for the token's tenant, in one transaction that first passes
/// the tenant door, and wakes the local relay once they are committed.
/// `work` gets the request's id, which every job it writes keeps.
async fn create_jobs<F>(
    state: &AppState,
    tenant: &Tenant,
    request: RequestId,
    work: F,
) -> Result<Vec<i32>, ApiError>
where
    F: FnOnce(&mut PgConnection, ActiveTenant, &str) -> Result<Vec<i32>, ApiError> + Send + 'static,
{
    let tenant = tenant.clone();
    let ids = blocking(&state.pool, move |conn| {
        conn.transaction(|conn| {
            let active = activate(conn, &tenant)?;
            work(conn, active, request.as_str())
        })
    })
    .await?;
    if !ids.is_empty() {
        state.jobs_created.notify_one();
    }
    Ok(ids)
}

fn accepted<T: serde::Serialize>(body: &T) -> HttpResponse {
    HttpResponse::build(StatusCode::ACCEPTED).json(body)
}

fn require_integration(
    conn: &mut PgConnection,
    tenant: ActiveTenant,
    id: i32,
) -> Result<(), ApiError> {
    match integrations::find_for_tenant(conn, tenant, etl_domain::IntegrationId::new(id))? {
        Some(integration) if integration.active => Ok(()),
        _ => Err(ApiError::validation(vec![unusable_integration(
            "integration_id",
            id,
        )])),
    }
}

/// `POST /pipeline` → 202: an extract job for the extraction service.
#[utoipa::path(
    post, path = "/api/v1/etl/pipeline", tag = "jobs",
    request_body = ETLPipelineRequest,
    responses(
        (status = 202, description = "Extract job written; published when the broker confirms", body = JobQueuedResponse),
        (status = 400, description = "The body is not JSON", body = ErrorBody),
        (status = 415, description = "Not application/json", body = ErrorBody),
        (status = 422, description = "Invalid field, entity type without transformer, or not the tenant's active integration", body = ErrorBody),
    ),
    security(("bearer" = [])),
)]
pub async fn pipeline(
    state: web::Data<AppState>,
    tenant: Tenant,
    request_id: RequestId,
    JsonBody(request): JsonBody<ETLPipelineRequest>,
) -> Result<HttpResponse, ApiError> {
    let ids = create_jobs(
        &state,
        &tenant,
        request_id,
        move |conn, tenant, request_id| {
            require_integration(conn, tenant, request.integration_id)?;
            // The extraction payload is kept as its text: stored as sent.
            let payload = JobPayload::Extract {
                integration_id: request.integration_id,
                payload: request.payload,
            };
            let id = jobs::insert_payload(
                conn,
                tenant.id(),
                &request.entity_type.entity_type(),
                &payload,
                request.priority,
                Some(request_id),
            )?;
            Ok(vec![id])
        },
    )
    .await?;
    Ok(accepted(&JobQueuedResponse::new(ids[0])))
}

/// `POST /load` → 202: a load job for rows already in final shape.
#[utoipa::path(
    post, path = "/api/v1/etl/load", tag = "jobs",
    request_body = LoadRequest,
    responses(
        (status = 202, description = "Load job written", body = JobQueuedResponse),
        (status = 400, description = "The body is not JSON", body = ErrorBody),
        (status = 413, description = "The body is over ETL_MAX_BODY_BYTES, or its rows cannot fit one message of ETL_MAX_MESSAGE_BYTES", body = ErrorBody),
        (status = 415, description = "Not application/json", body = ErrorBody),
        (status = 422, description = "Invalid field or entity type without transformer", body = ErrorBody),
    ),
    security(("bearer" = [])),
)]
pub async fn load(
    state: web::Data<AppState>,
    tenant: Tenant,
    request_id: RequestId,
    JsonBody(request): JsonBody<LoadRequest>,
) -> Result<HttpResponse, ApiError> {
    if request.transformed_data.is_empty() {
        return Err(ApiError::invalid_field(
            "transformed_data",
            "must hold at least one row",
        ));
    }
    let kind = request.entity_type;
    let row_integrations = validate_rows(kind, &request.transformed_data)?;
    let entity_type = kind.entity_type();
    // The rows as their own text: every digit reaches the final table.
    let payload = JobPayload::Load {
        transformed_data: request.transformed_data,
        load_options: request.load_options,
    };
    let max_message_bytes = state.max_message_bytes;
    let ids = create_jobs(&state, &tenant, request_id, move |conn, tenant, request_id| {
        let mut wanted: Vec<IntegrationId> =
            row_integrations.iter().copied().map(IntegrationId::new).collect();
        wanted.sort_unstable();
        wanted.dedup();
        let usable = integrations::active_ids_for_tenant(conn, tenant, &wanted)?;
        let mut fields = Fields::default();
        for (i, id) in row_integrations.iter().enumerate() {
            if !usable.contains(&IntegrationId::new(*id)) {
                fields.note(
                    &format!("transformed_data[{i}].integration_id"),
                    format!("integration {id} is not an active integration of this tenant"),
                );
            }
        }
        fields.finish()?;
        let id = jobs::insert_payload(conn, tenant.id(), &entity_type, &payload, JobPriority::default(), Some(request_id))?;
        // Measured as the relay will write it (PostgreSQL's spelling adds
        // spaces, and can lengthen numbers); too large rolls it all back.
        let rows_bytes = usize::try_from(jobs::load_rows_text_len(conn, etl_domain::JobId::new(id))?).unwrap_or(usize::MAX);
        let limit = max_message_bytes.saturating_sub(LOAD_MESSAGE_ENVELOPE_BYTES);
        if rows_bytes > limit {
            return Err(ApiError::new(
                ErrorCode::PayloadTooLarge,
                format!(
                    "transformed_data takes {rows_bytes} bytes in a message, more than the {limit} that fit one (ETL_MAX_MESSAGE_BYTES); send the rows in smaller requests"
                ),
            ));
        }
        Ok(vec![id])
    })
    .await?;
    Ok(accepted(&JobQueuedResponse::new(ids[0])))
}

/// Room kept in a load message for the fields around its rows.
const LOAD_MESSAGE_ENVELOPE_BYTES: usize = 1024;

/// Checks every row has the final table's shape (422 naming
/// `transformed_data[i].field`); returns the integration each row names.
fn validate_rows(
    kind: TransformerKind,
    rows: &[etl_domain::RawObject],
) -> Result<Vec<i32>, ApiError> {
    let table = kind.entity().table();
    rows.iter()
        .enumerate()
        .map(|(i, row)| {
            (table.check)(row.get())
                .map(|checked| checked.integration_id)
                .map_err(|error| {
                    ApiError::validation(vec![FieldError {
                        field: error.field,
                        message: error.message,
                    }])
                    .prefixed(&format!("transformed_data[{i}]"))
                })
        })
        .collect()
}

/// `POST /pipeline/process` → 202: transform jobs for every pending raw
/// record of the type, `batch_size` records per job.
#[utoipa::path(
    post, path = "/api/v1/etl/pipeline/process", tag = "jobs",
    request_body = PipelineProcessRequest,
    responses(
        (status = 202, description = "Transform jobs written; the records move to processing", body = JobsQueuedResponse),
        (status = 422, description = "Invalid field, entity type without transformer, or not the tenant's active integration", body = ErrorBody),
    ),
    security(("bearer" = [])),
)]
pub async fn process(
    state: web::Data<AppState>,
    tenant: Tenant,
    request_id: RequestId,
    JsonBody(request): JsonBody<PipelineProcessRequest>,
) -> Result<HttpResponse, ApiError> {
    let queued = queue_backlog(
        &state,
        &tenant,
        request_id,
        request.entity_type,
        request.integration_id,
        Backlog::Pending,
        request.batch_size.get(),
    )
    .await?;
    Ok(accepted(&queued))
}

/// `POST /raw-data/replay` → 202: the tenant's failed raw records of the
/// type (of one error code, when given) back to pending and queued for
/// transform, in batches as `/pipeline/process` queues them.
#[utoipa::path(
    post, path = "/api/v1/etl/raw-data/replay", tag = "raw-data",
    request_body = ReplayRequest,
    responses(
        (status = 202, description = "Transform jobs written for the matching failed records (none: records 0, job_ids [])", body = JobsQueuedResponse),
        (status = 400, description = "The body is not JSON", body = ErrorBody),
        (status = 415, description = "Not application/json", body = ErrorBody),
        (status = 422, description = "Invalid field, entity type without transformer, or not the tenant's active integration", body = ErrorBody),
    ),
    security(("bearer" = [])),
)]
pub async fn replay(
    state: web::Data<AppState>,
    tenant: Tenant,
    request_id: RequestId,
    JsonBody(request): JsonBody<ReplayRequest>,
) -> Result<HttpResponse, ApiError> {
    let queued = queue_backlog(
        &state,
        &tenant,
        request_id,
        request.entity_type,
        request.integration_id,
        Backlog::Failed {
            code: request.error_code.map(String::from),
        },
        BatchSize::default().get(),
    )
    .await?;
    Ok(accepted(&queued))
}

/// Queues transform jobs for a backlog of the tenant's records, `batch`
/// records per job.
async fn queue_backlog(
    state: &AppState,
    tenant: &Tenant,
    request_id: RequestId,
    kind: TransformerKind,
    integration_id: Option<i32>,
    backlog: Backlog,
    batch: i64,
) -> Result<JobsQueuedResponse, ApiError> {
    let (scope, newest) = blocking_as(&state.pool, tenant, move |conn, tenant| {
        if let Some(integration_id) = integration_id {
            require_integration(conn, tenant, integration_id)?;
        }
        let scope = BacklogScope {
            tenant,
            entity_type: kind.entity_type(),
            integration_id,
            backlog,
        };
        let newest = raw_records::newest_in_backlog(conn, &scope)?;
        Ok((scope, newest))
    })
    .await?;
    // One transaction per batch: each job is published (and run) while the
    // next batch is taken, and a large backlog holds no long transaction.
    // Records taken stay taken: should a later batch fail, calling again
    // queues what is left and nothing twice.
    let (mut job_ids, mut records, mut after) = (Vec::new(), 0, 0);
    while let Some(up_to) = newest {
        let (scope, request_id) = (scope.clone(), request_id.clone());
        let taken = blocking(&state.pool, move |conn| {
            conn.transaction(|conn| {
                let ids = raw_records::take_backlog_batch(conn, &scope, (after, up_to), batch)?;
                let Some(&last) = ids.last() else {
                    return Ok::<_, ApiError>(None);
                };
                let count = ids.len();
                let payload = JobPayload::Transform { raw_data_ids: ids };
                let id = jobs::insert_payload(
                    conn,
                    scope.tenant.id(),
                    &scope.entity_type,
                    &payload,
                    JobPriority::default(),
                    Some(request_id.as_str()),
                )?;
                Ok(Some((id, count, last)))
            })
        })
        .await?;
        let Some((job_id, count, last)) = taken else {
            break;
        };
        state.jobs_created.notify_one();
        job_ids.push(job_id);
        records += count;
        after = last;
    }
    Ok(JobsQueuedResponse::new(job_ids, records))
}

/// `POST /transform` → 202 with a transform job, or with
/// `transform_options.dry_run` 200 with what it would produce (nothing
/// stored).
#[utoipa::path(
    post, path = "/api/v1/etl/transform", tag = "jobs",
    request_body = TransformRequest,
    responses(
        (status = 202, description = "Transform job written", body = JobQueuedResponse),
        (status = 200, description = "Dry run: {records, errors}, nothing stored", body = Object),
        (status = 400, description = "The body is not JSON", body = ErrorBody),
        (status = 415, description = "Not application/json", body = ErrorBody),
        (status = 422, description = "Invalid field, entity type without transformer, or a raw_data_ids[i] that is not the tenant's record of that type", body = ErrorBody),
    ),
    security(("bearer" = [])),
)]
pub async fn transform(
    state: web::Data<AppState>,
    tenant: Tenant,
    request_id: RequestId,
    JsonBody(request): JsonBody<TransformRequest>,
) -> Result<HttpResponse, ApiError> {
    let dry_run = request
        .transform_options
        .as_ref()
        .is_some_and(|o| o.dry_run);
    let kind = request.entity_type;
    let ids: Vec<i32> = request.raw_data_ids.as_slice().to_vec();
    if dry_run {
        let transformed = blocking_as(&state.pool, &tenant, move |conn, tenant| {
            let records = checked_records(conn, tenant, kind, &ids)?;
            Ok(pipeline::transform_outlined(
                conn,
                tenant.id(),
                kind,
                &records,
            )?)
        })
        .await?;
        // Not a list to page through: an answer past ETL_MAX_RESPONSE_BYTES
        // is refused, saying so, rather than cut.
        let body = serde_json::to_string(&transformed.preview(kind)).map_err(ApiError::internal)?;
        if body.len() > state.max_response_bytes {
            return Err(ApiError::invalid_field(
                "raw_data_ids",
                format!(
                    "the dry run's answer would be {} bytes, over this server's {} (ETL_MAX_RESPONSE_BYTES); ask for fewer records",
                    body.len(),
                    state.max_response_bytes
                ),
            ));
        }
        return Ok(HttpResponse::Ok()
            .content_type("application/json")
            .body(body));
    }
    let created = create_jobs(
        &state,
        &tenant,
        request_id,
        move |conn, tenant, request_id| {
            checked_records(conn, tenant, kind, &ids)?;
            let payload = JobPayload::Transform { raw_data_ids: ids };
            let id = jobs::insert_payload(
                conn,
                tenant.id(),
                &kind.entity_type(),
                &payload,
                JobPriority::default(),
                Some(request_id),
            )?;
            Ok(vec![id])
        },
    )
    .await?;
    Ok(accepted(&JobQueuedResponse::new(created[0])))
}

/// The outlines of the tenant's records named by `ids` (no document is
/// read), all of the kind's entity type; 422 naming each id that is not.
fn checked_records(
    conn: &mut PgConnection,
    tenant: ActiveTenant,
    kind: TransformerKind,
    ids: &[i32],
) -> Result<Vec<etl_store::raw_records::RawRecordOutline>, ApiError> {
    let records =
        raw_records::outlines_for_tenant(conn, tenant.id(), &etl_domain::RawRecordId::all(ids))?;
    let mut fields = Fields::default();
    for (i, id) in ids.iter().enumerate() {
        match records.iter().find(|r| r.id == *id) {
            None => fields.note(
                &format!("raw_data_ids[{i}]"),
                format!("raw record {id} not found"),
            ),
            Some(record) if record.entity_type != kind.as_str() => fields.note(
                &format!("raw_data_ids[{i}]"),
                format!("raw record {id} is {}, not {kind}", record.entity_type),
            ),
            Some(_) => {}
        }
    }
    fields.finish()?;
    Ok(records)
}
