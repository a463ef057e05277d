//! Raw data routes (SPEC §5): store, store a batch, list, read one, change
//! status.

use std::collections::BTreeSet;

use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use etl_domain::IntegrationId;
use etl_domain::{
    EntityType, IdempotencyKey, ProcessingStatus, RawDataDetail, RawDataResponse,
    StatusUpdatedResponse, StoreBatchRequest, StoreBatchResponse, StoreRawDataRequest,
    StoreRawDataResponse, UpdateStatusRequest,
};
use etl_store::raw_records::{self, NewRawRecord, RawRecordFilter, StatusUpdate};
use etl_store::{integrations, Fault, JsonText, PgConnection, QueryError};
use serde::Deserialize;

use crate::blocking;
use crate::error::{ApiError, ErrorBody, FieldError};
use crate::extract::{IdempotencyHeader, JsonBody, Tenant};
use crate::idempotent::{answer, idempotent, Answer};
use crate::query::{self, parse_with, Fields};
use crate::state::AppState;
use crate::store_writer::{fault_answer, refused_record};
use crate::tenancy::{activate, activate_id, blocking_as, unusable_integration};

/// The row to insert: the request's JSON text as it came (after the NUL
/// rule), never re-serialised from a tree.
fn new_record(tenant_id: etl_domain::TenantId, request: StoreRawDataRequest) -> NewRawRecord {
    let changes = serde_json::to_string(&request.ingest_changes).unwrap_or_else(|_| "[]".into());
    NewRawRecord {
        tenant_id: tenant_id.get(),
        integration_id: request.integration_id,
        entity_type: request.entity_type.into(),
        external_id: request.external_id.map(Into::into),
        raw_data: JsonText(request.raw_data.into_string()),
        extraction_metadata: request
            .extraction_metadata
            .map(|m| JsonText(m.into_string())),
        ingest_changes: JsonText(changes),
    }
}

/// `POST /raw-data/store` → 201.
#[utoipa::path(
    post, path = "/api/v1/etl/raw-data/store", tag = "raw-data",
    request_body = StoreRawDataRequest,
    params(("Idempotency-Key" = Option<IdempotencyKey>, Header, description = "1–255 visible ASCII characters; a repeat by the same tenant returns the first answer and stores nothing new")),
    responses(
        (status = 201, description = "Stored", body = StoreRawDataResponse),
        (status = 400, description = "The body is not JSON", body = ErrorBody),
        (status = 413, description = "The body is over ETL_MAX_BODY_BYTES", body = ErrorBody),
        (status = 415, description = "The body is not sent as application/json", body = ErrorBody),
        (status = 422, description = "Invalid field, or an integration that is not the tenant's active one", body = ErrorBody),
    ),
    security(("bearer" = [])),
)]
pub async fn store(
    state: web::Data<AppState>,
    tenant: Tenant,
    key: IdempotencyHeader,
    JsonBody(request): JsonBody<StoreRawDataRequest>,
) -> Result<HttpResponse, ApiError> {
    let entity_type = request.entity_type.clone();
    // The checked insert checks the tenant in its own statement.
    let record = new_record(tenant.claimed_id(), request);
    let response = match key.0 {
        // The common case goes through the group-commit writer.
        None => {
            let (status, body) = store_one(&state, record).await?;
            HttpResponse::build(status).json(body)
        }
        Some(key) => {
            let (response, fresh) =
                idempotent(&state, &tenant, "raw-data/store", Some(key), move |conn| {
                    store_one_in(conn, &record)
                })
                .await?;
            if !fresh {
                return Ok(response);
            }
            response
        }
    };
    state.metrics.records_stored(&entity_type, 1);
    Ok(response)
}

async fn store_one(state: &AppState, record: NewRawRecord) -> Result<Answer, ApiError> {
    let (tenant_id, integration_id) = (
        etl_domain::TenantId::new(record.tenant_id),
        record.integration_id,
    );
    match state.store_writer.store(record).await? {
        Some(id) => answer(StatusCode::CREATED, &StoreRawDataResponse::new(id)),
        None => {
            let why = blocking(&state.pool, move |conn| {
                Ok(refusal(conn, tenant_id, integration_id))
            });
            Err(why.await?)
        }
    }
}

/// Inside a transaction (the idempotent path): the same insert and checks.
/// The insert runs in a savepoint, so that a failure can be judged
/// ([`refused_record`]) inside the transaction that holds the key.
fn store_one_in(conn: &mut PgConnection, record: &NewRawRecord) -> Result<Answer, ApiError> {
    use etl_store::Connection as _;
    let ids = conn
        .transaction(|conn| raw_records::insert_checked_many(conn, std::slice::from_ref(record)))
        .map_err(|e| refused_record(conn, record, &e, "raw_data"))?;
    match ids.first().copied().flatten() {
        Some(id) => answer(StatusCode::CREATED, &StoreRawDataResponse::new(id)),
        None => Err(refusal(
            conn,
            etl_domain::TenantId::new(record.tenant_id),
            record.integration_id,
        )),
    }
}

/// Why a checked insert stored nothing: an inactive or missing tenant (403),
/// else an integration that is not the tenant's active one (422).
fn refusal(
    conn: &mut PgConnection,
    tenant_id: etl_domain::TenantId,
    integration_id: i32,
) -> ApiError {
    match activate_id(conn, tenant_id) {
        Err(error) => error,
        Ok(_) => ApiError::validation(vec![unusable_integration("integration_id", integration_id)]),
    }
}

/// `POST /raw-data/store-batch` → 201, all or nothing.
#[utoipa::path(
    post, path = "/api/v1/etl/raw-data/store-batch", tag = "raw-data",
    request_body = StoreBatchRequest,
    params(("Idempotency-Key" = Option<IdempotencyKey>, Header, description = "1–255 visible ASCII characters; a repeat by the same tenant returns the first answer and stores nothing new")),
    responses(
        (status = 201, description = "All stored; ids in input order", body = StoreBatchResponse),
        (status = 400, description = "The body is not JSON", body = ErrorBody),
        (status = 413, description = "The body is over ETL_MAX_BODY_BYTES", body = ErrorBody),
        (status = 415, description = "The body is not sent as application/json", body = ErrorBody),
        (status = 422, description = "A record is invalid (`records[i].field`); nothing stored", body = ErrorBody),
    ),
    security(("bearer" = [])),
)]
pub async fn store_batch(
    state: web::Data<AppState>,
    tenant: Tenant,
    key: IdempotencyHeader,
    JsonBody(request): JsonBody<StoreBatchRequest>,
) -> Result<HttpResponse, ApiError> {
    let requests = request.records.into_records();
    let counts = count_by_entity_type(&requests);
    let records: Vec<NewRawRecord> = requests
        .into_iter()
        .map(|r| new_record(tenant.claimed_id(), r))
        .collect();
    let for_tenant = tenant.clone();
    let (response, fresh) = idempotent(
        &state,
        &tenant,
        "raw-data/store-batch",
        key.0,
        move |conn| store_many(conn, &for_tenant, &records),
    )
    .await?;
    if fresh {
        for (entity_type, count) in counts {
            state.metrics.records_stored(&entity_type, count);
        }
    }
    Ok(response)
}

fn count_by_entity_type(requests: &[StoreRawDataRequest]) -> Vec<(EntityType, usize)> {
    let mut counts: Vec<(EntityType, usize)> = Vec::new();
    for request in requests {
        match counts.iter_mut().find(|(t, _)| *t == request.entity_type) {
            Some((_, n)) => *n += 1,
            None => counts.push((request.entity_type.clone(), 1)),
        }
    }
    counts
}

/// Why a batch was not stored: an answer, or the insert PostgreSQL refused.
enum BatchFailure {
    Answer(ApiError),
    Insert(QueryError),
}

impl From<ApiError> for BatchFailure {
    fn from(error: ApiError) -> Self {
        Self::Answer(error)
    }
}

impl From<QueryError> for BatchFailure {
    fn from(error: QueryError) -> Self {
        Self::Answer(error.into())
    }
}

/// All or nothing: one transaction (a savepoint under an idempotency key).
/// A batch PostgreSQL refuses is answered with a 422 naming the record that
/// caused it.
fn store_many(
    conn: &mut PgConnection,
    tenant: &Tenant,
    records: &[NewRawRecord],
) -> Result<Answer, ApiError> {
    use etl_store::Connection as _;
    match conn.transaction(|conn| store_many_in(conn, tenant, records)) {
        Ok(answer) => Ok(answer),
        Err(BatchFailure::Answer(error)) => Err(error),
        Err(BatchFailure::Insert(error)) if Fault::known(&error) == Some(Fault::Transient) => {
            Err(ApiError::unavailable(format!("database: {error}")))
        }
        Err(BatchFailure::Insert(error)) => {
            tracing::warn!(%error, "PostgreSQL refused a batch; finding the record");
            Err(match first_failing(conn, records) {
                Some((i, fault)) => fault_answer(fault, &format!("records[{i}].raw_data"), &error),
                // No record fails alone any more: the failure was passing.
                None => ApiError::unavailable(format!("database: {error}")),
            })
        }
    }
}

/// The index of the first record whose insert fails on its own, with whose
/// fault that is (by its SQLSTATE); each is tried in a savepoint rolled
/// back.
fn first_failing(conn: &mut PgConnection, records: &[NewRawRecord]) -> Option<(usize, Fault)> {
    records.iter().enumerate().find_map(|(i, record)| {
        match raw_records::sqlstate_of_insert(conn, record) {
            Ok(code) => code.map(|code| (i, Fault::of_sqlstate(&code))),
            // Asking failed too (the connection is gone, say): that is
            // the answer for the batch.
            Err(error) => Some((i, Fault::known(&error).unwrap_or(Fault::Internal))),
        }
    })
}

fn store_many_in(
    conn: &mut PgConnection,
    tenant: &Tenant,
    records: &[NewRawRecord],
) -> Result<Answer, BatchFailure> {
    let tenant = activate(conn, tenant)?;
    let wanted: Vec<IntegrationId> = records
        .iter()
        .map(|r| IntegrationId::new(r.integration_id))
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let usable = integrations::active_ids_for_tenant(conn, tenant, &wanted)?;
    let errors: Vec<FieldError> = records
        .iter()
        .enumerate()
        .filter(|(_, r)| !usable.contains(&IntegrationId::new(r.integration_id)))
        .map(|(i, r)| {
            unusable_integration(format!("records[{i}].integration_id"), r.integration_id)
        })
        .collect();
    if !errors.is_empty() {
        return Err(ApiError::validation(errors).into());
    }
    // The checks above named any bad integration; one deactivated since
    // then refuses the whole batch (the transaction rolls the rest back).
    let ids: Option<Vec<i32>> = raw_records::insert_checked_many(conn, records)
        .map_err(BatchFailure::Insert)?
        .into_iter()
        .collect();
    match ids {
        Some(ids) => Ok(answer(StatusCode::CREATED, &StoreBatchResponse::new(ids))?),
        None => Err(ApiError::conflict(
            "An integration changed while the batch was stored; nothing was stored, retry",
        )
        .into()),
    }
}

/// Query of `GET /raw-data`; every value arrives as text and is parsed here
/// so that each bad one is named.
#[derive(Debug, Deserialize)]
pub struct ListQuery {
    entity_type: Option<String>,
    status: Option<String>,
    limit: Option<String>,
    after_id: Option<String>,
}

impl ListQuery {
    fn parse(self) -> Result<RawRecordFilter, ApiError> {
        let mut fields = Fields::default();
        let entity_type = fields.take(
            "entity_type",
            parse_with(self.entity_type.clone(), EntityType::parse),
        );
        if self.entity_type.is_none() {
            fields.note("entity_type", "is required");
        }
        let status = fields.take(
            "status",
            parse_with(self.status, |s| s.parse::<ProcessingStatus>()),
        );
        let limit = fields.take("limit", query::limit(self.limit));
        let after_id = fields.take("after_id", query::id(self.after_id));
        fields.finish()?;
        let entity_type =
            entity_type.ok_or_else(|| ApiError::invalid_field("entity_type", "is required"))?;
        Ok(RawRecordFilter {
            entity_type,
            status,
            after_id,
            limit: limit.unwrap_or_default(),
        })
    }
}

/// `GET /raw-data` → the tenant's records of one type, oldest first.
#[utoipa::path(
    get, path = "/api/v1/etl/raw-data", tag = "raw-data", operation_id = "list_raw_data",
    params(
        ("entity_type" = etl_domain::EntityType, Query, description = "Required: which kind of record"),
        ("status" = Option<ProcessingStatus>, Query, description = "Only records in this status"),
        ("limit" = Option<etl_domain::PageLimit>, Query, description = "1–1000, default 100"),
        ("after_id" = Option<i32>, Query, description = "Keyset paging: only ids above this"),
    ),
    responses(
        (status = 200, description = "The tenant's records, oldest first", body = Vec<RawDataResponse>),
        (status = 422, description = "A query parameter is missing or invalid", body = ErrorBody),
    ),
    security(("bearer" = [])),
)]
pub async fn list(
    state: web::Data<AppState>,
    tenant: Tenant,
    query: web::Query<ListQuery>,
) -> Result<HttpResponse, ApiError> {
    let filter = query.into_inner().parse()?;
    let rows = blocking(&state.pool, move |conn| {
        // The page checks the tenant in its own statement (it is empty for
        // an inactive tenant): only an empty page passes the door, to tell
        // 403 from an empty page.
        let rows = raw_records::list_for_tenant(conn, tenant.claimed_id(), &filter)?;
        if rows.is_empty() {
            activate(conn, &tenant)?;
        }
        Ok(rows)
    })
    .await?;
    let body = rows
        .into_iter()
        .map(|row| row.into_response())
        .collect::<Result<Vec<RawDataResponse>, String>>()
        .map_err(ApiError::internal)?;
    crate::bounded::json_list(body, state.max_response_bytes)
}

/// `GET /raw-data/{id}` → one record with every detail.
#[utoipa::path(
    get, path = "/api/v1/etl/raw-data/{id}", tag = "raw-data", operation_id = "get_raw_data",
    params(("id" = i32, Path, description = "Raw record id")),
    responses(
        (status = 200, description = "The record", body = RawDataDetail),
        (status = 404, description = "No such record of this tenant", body = ErrorBody),
        (status = 422, description = "The id is not an integer", body = ErrorBody),
    ),
    security(("bearer" = [])),
)]
pub async fn get(
    state: web::Data<AppState>,
    tenant: Tenant,
    id: web::Path<i32>,
) -> Result<HttpResponse, ApiError> {
    let id = id.into_inner();
    let row = blocking_as(&state.pool, &tenant, move |conn, tenant| {
        raw_records::find_for_tenant(conn, tenant, etl_domain::RawRecordId::new(id))?
            .ok_or_else(|| ApiError::not_found(&format!("Raw record {id}")))
    })
    .await?;
    let detail: RawDataDetail = row.into_detail().map_err(ApiError::internal)?;
    Ok(HttpResponse::Ok().json(detail))
}

/// `PUT /raw-data/{id}/status` → 200, or 409 for a forbidden change.
#[utoipa::path(
    put, path = "/api/v1/etl/raw-data/{id}/status", tag = "raw-data",
    params(("id" = i32, Path, description = "Raw record id")),
    request_body = UpdateStatusRequest,
    responses(
        (status = 200, description = "Updated (or already in that status)", body = StatusUpdatedResponse),
        (status = 400, description = "The body is not JSON", body = ErrorBody),
        (status = 413, description = "The body is over ETL_MAX_BODY_BYTES", body = ErrorBody),
        (status = 415, description = "The body is not sent as application/json", body = ErrorBody),
        (status = 404, description = "No such record of this tenant", body = ErrorBody),
        (status = 409, description = "Forbidden change: completed and skipped are final; failed may only go back to pending", body = ErrorBody),
        (status = 422, description = "Unknown status or invalid body", body = ErrorBody),
    ),
    security(("bearer" = [])),
)]
pub async fn update_status(
    state: web::Data<AppState>,
    tenant: Tenant,
    id: web::Path<i32>,
    JsonBody(request): JsonBody<UpdateStatusRequest>,
) -> Result<HttpResponse, ApiError> {
    let id = id.into_inner();
    let to = request.status;
    blocking(&state.pool, move |conn| {
        use etl_store::Connection as _;
        conn.transaction(|conn| {
            let tenant = activate(conn, &tenant)?;
            match raw_records::update_status(
                conn,
                tenant,
                etl_domain::RawRecordId::new(id),
                to,
                request.error_details,
            )? {
                StatusUpdate::NotFound => Err(ApiError::not_found(&format!("Raw record {id}"))),
                StatusUpdate::Forbidden { current } => Err(ApiError::conflict(format!(
                    "Cannot change status from {current} to {to}{}",
                    if current.is_final() {
                        format!(": {current} is final")
                    } else {
                        String::new()
                    }
                ))),
                StatusUpdate::Unchanged | StatusUpdate::Updated => Ok(()),
            }
        })
    })
    .await?;
    Ok(HttpResponse::Ok().json(StatusUpdatedResponse::new(to)))
}
