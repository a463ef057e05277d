//! Final tables, read-only (SPEC §5, §7.4): `GET /work-items`,
//! `GET /work-items/{id}`, `GET /work-item-changes`, `GET /pull-requests`,
//! `GET /pull-requests/{id}`, `GET /flow-metrics`.

use actix_web::{web, HttpResponse};
use chrono::{DateTime, Utc};
use etl_domain::PageLimit;
use etl_store::{loaders, JsonText};
use serde::Deserialize;

use crate::error::{ApiError, ErrorBody};
use crate::extract::Tenant;
use crate::query::{self, Fields};
use crate::state::AppState;
use crate::tenancy::blocking_as;

/// Query of `GET /work-items`.
#[derive(Debug, Deserialize)]
pub struct WorkItemsQuery {
    project_key: Option<String>,
    status: Option<String>,
    limit: Option<String>,
    after_id: Option<String>,
}

/// Query of `GET /pull-requests`.
#[derive(Debug, Deserialize)]
pub struct PullRequestsQuery {
    repository: Option<String>,
    state: Option<String>,
    limit: Option<String>,
    after_id: Option<String>,
}

fn paging(
    limit: Option<String>,
    after_id: Option<String>,
    fields: &mut Fields,
) -> (PageLimit, Option<i32>) {
    let limit = fields
        .take("limit", query::limit(limit))
        .unwrap_or_default();
    let after_id = fields.take("after_id", query::id(after_id));
    (limit, after_id)
}

/// `GET /work-items` → the tenant's work items, oldest first.
#[utoipa::path(
    get, path = "/api/v1/etl/work-items", tag = "final data",
    params(
        ("project_key" = Option<String>, Query, description = "Only this project"),
        ("status" = Option<String>, Query, description = "Only this status (as the source names it)"),
        ("limit" = Option<etl_domain::PageLimit>, Query, description = "1–1000, default 100"),
        ("after_id" = Option<i32>, Query, description = "Keyset paging: only ids above this"),
    ),
    responses(
        (status = 200, description = "Rows of work_items (every column but tenant_id)", body = Vec<etl_domain::WorkItem>),
        (status = 422, description = "A query parameter is invalid", body = ErrorBody),
    ),
    security(("bearer" = [])),
)]
pub async fn work_items(
    state: web::Data<AppState>,
    tenant: Tenant,
    query: web::Query<WorkItemsQuery>,
) -> Result<HttpResponse, ApiError> {
    let query = query.into_inner();
    let mut fields = Fields::default();
    fields.text("project_key", query.project_key.as_deref());
    fields.text("status", query.status.as_deref());
    let (limit, after_id) = paging(query.limit, query.after_id, &mut fields);
    fields.finish()?;
    let rows = blocking_as(&state.pool, &tenant, move |conn, tenant| {
        Ok(loaders::list_work_items(
            conn,
            tenant,
            query.project_key.as_deref(),
            query.status.as_deref(),
            after_id,
            limit.get(),
        )?)
    })
    .await?;
    Ok(crate::bounded::text_list(
        rows.iter().map(JsonText::as_str),
        state.max_response_bytes,
    ))
}

/// `GET /pull-requests` → the tenant's pull requests, oldest first.
#[utoipa::path(
    get, path = "/api/v1/etl/pull-requests", tag = "final data",
    params(
        ("repository" = Option<String>, Query, description = "Only this repository (owner/name)"),
        ("state" = Option<String>, Query, description = "open, closed or merged"),
        ("limit" = Option<etl_domain::PageLimit>, Query, description = "1–1000, default 100"),
        ("after_id" = Option<i32>, Query, description = "Keyset paging: only ids above this"),
    ),
    responses(
        (status = 200, description = "Rows of pull_requests (every column but tenant_id)", body = Vec<etl_domain::PullRequest>),
        (status = 422, description = "A query parameter is invalid", body = ErrorBody),
    ),
    security(("bearer" = [])),
)]
pub async fn pull_requests(
    state: web::Data<AppState>,
    tenant: Tenant,
    query: web::Query<PullRequestsQuery>,
) -> Result<HttpResponse, ApiError> {
    let query = query.into_inner();
    let mut fields = Fields::default();
    fields.text("repository", query.repository.as_deref());
    if let Some(state) = &query.state {
        if !matches!(state.as_str(), "open" | "closed" | "merged") {
            fields.note(
                "state",
                format!("`{state}` is not one of: open closed merged"),
            );
        }
    }
    let (limit, after_id) = paging(query.limit, query.after_id, &mut fields);
    fields.finish()?;
    let rows = blocking_as(&state.pool, &tenant, move |conn, tenant| {
        Ok(loaders::list_pull_requests(
            conn,
            tenant,
            query.repository.as_deref(),
            query.state.as_deref(),
            after_id,
            limit.get(),
        )?)
    })
    .await?;
    Ok(crate::bounded::text_list(
        rows.iter().map(JsonText::as_str),
        state.max_response_bytes,
    ))
}

/// `GET /work-items/{id}` → the work item with its derived columns and its
/// status changes, oldest first.
#[utoipa::path(
    get, path = "/api/v1/etl/work-items/{id}", tag = "final data", operation_id = "get_work_item",
    params(("id" = i32, Path, description = "Work item id (`id` of GET /work-items)")),
    responses(
        (status = 200, description = "The work item and its `status` changes, oldest first (at most 1000; GET /work-item-changes pages them all)", body = etl_domain::WorkItemDetail),
        (status = 404, description = "No such work item of this tenant", body = ErrorBody),
    ),
    security(("bearer" = [])),
)]
pub async fn work_item(
    state: web::Data<AppState>,
    tenant: Tenant,
    id: web::Path<i32>,
) -> Result<HttpResponse, ApiError> {
    let id = id.into_inner();
    let row = blocking_as(&state.pool, &tenant, move |conn, tenant| {
        loaders::find_work_item(conn, tenant, id)?
            .ok_or_else(|| ApiError::not_found(&format!("Work item {id}")))
    })
    .await?;
    Ok(HttpResponse::Ok()
        .content_type("application/json")
        .body(row.into_string()))
}

/// Query of `GET /work-item-changes`.
#[derive(Debug, Deserialize)]
pub struct WorkItemChangesQuery {
    work_item_key: Option<String>,
    field: Option<String>,
    limit: Option<String>,
    after_id: Option<String>,
}

/// `GET /work-item-changes` → the tenant's changelog items, by id.
#[utoipa::path(
    get, path = "/api/v1/etl/work-item-changes", tag = "final data",
    params(
        ("work_item_key" = Option<String>, Query, description = "Only the changes of the work item with this key (SHOP-1)"),
        ("field" = Option<String>, Query, description = "Only changes of this field (status, assignee, …)"),
        ("limit" = Option<etl_domain::PageLimit>, Query, description = "1–1000, default 100"),
        ("after_id" = Option<i64>, Query, description = "Keyset paging: only ids above this"),
    ),
    responses(
        (status = 200, description = "Changes, oldest id first", body = Vec<etl_domain::WorkItemChange>),
        (status = 422, description = "A query parameter is invalid", body = ErrorBody),
    ),
    security(("bearer" = [])),
)]
pub async fn work_item_changes(
    state: web::Data<AppState>,
    tenant: Tenant,
    query: web::Query<WorkItemChangesQuery>,
) -> Result<HttpResponse, ApiError> {
    let query = query.into_inner();
    let mut fields = Fields::default();
    fields.text("work_item_key", query.work_item_key.as_deref());
    fields.text("field", query.field.as_deref());
    let limit = fields
        .take("limit", query::limit(query.limit))
        .unwrap_or_default();
    let after_id = fields.take("after_id", query::long_id(query.after_id));
    fields.finish()?;
    let rows = blocking_as(&state.pool, &tenant, move |conn, tenant| {
        Ok(loaders::list_work_item_changes(
            conn,
            tenant,
            query.work_item_key.as_deref(),
            query.field.as_deref(),
            after_id,
            limit.get(),
        )?)
    })
    .await?;
    Ok(crate::bounded::text_list(
        rows.iter().map(JsonText::as_str),
        state.max_response_bytes,
    ))
}

/// `GET /pull-requests/{id}` → the pull request with its derived columns,
/// commits, reviews and links to work items.
#[utoipa::path(
    get, path = "/api/v1/etl/pull-requests/{id}", tag = "final data", operation_id = "get_pull_request",
    params(("id" = i32, Path, description = "Pull request id (`id` of GET /pull-requests)")),
    responses(
        (status = 200, description = "The pull request, its commits and reviews (oldest first, at most 1000 of each) and its links", body = etl_domain::PullRequestDetail),
        (status = 404, description = "No such pull request of this tenant", body = ErrorBody),
    ),
    security(("bearer" = [])),
)]
pub async fn pull_request(
    state: web::Data<AppState>,
    tenant: Tenant,
    id: web::Path<i32>,
) -> Result<HttpResponse, ApiError> {
    let id = id.into_inner();
    let row = blocking_as(&state.pool, &tenant, move |conn, tenant| {
        loaders::find_pull_request(conn, tenant, id)?
            .ok_or_else(|| ApiError::not_found(&format!("Pull request {id}")))
    })
    .await?;
    Ok(HttpResponse::Ok()
        .content_type("application/json")
        .body(row.into_string()))
}

/// Query of `GET /flow-metrics`.
#[derive(Debug, Deserialize)]
pub struct FlowMetricsQuery {
    project_key: Option<String>,
    repository: Option<String>,
    since: Option<String>,
    until: Option<String>,
}

/// The default window of `GET /flow-metrics`: the last 30 days.
const FLOW_WINDOW_DAYS: i64 = 30;

/// An RFC 3339 instant of the query.
fn instant(text: Option<String>) -> Option<Result<DateTime<Utc>, String>> {
    text.map(|t| {
        DateTime::parse_from_rfc3339(t.trim())
            .map(|d| d.with_timezone(&Utc))
            .map_err(|_| {
                format!("must be an RFC 3339 date-time such as 2024-01-15T10:00:00Z (got `{t}`)")
            })
    })
}

/// `GET /flow-metrics` → percentiles of lead and cycle time of the work
/// items resolved, and of coding, pickup and review time of the pull
/// requests merged, in `[since, until)`.
#[utoipa::path(
    get, path = "/api/v1/etl/flow-metrics", tag = "final data",
    params(
        ("project_key" = Option<String>, Query, description = "Only work items of this project (pull requests are not filtered by it)"),
        ("repository" = Option<String>, Query, description = "Only pull requests of this repository, owner/name (work items are not filtered by it)"),
        ("since" = Option<DateTime<Utc>>, Query, description = "Start of the window, included (RFC 3339); default: 30 days before `until`"),
        ("until" = Option<DateTime<Utc>>, Query, description = "End of the window, excluded (RFC 3339); default: now"),
    ),
    responses(
        (status = 200, description = "p50, p85 and p95 (PostgreSQL's percentile_cont) of each figure; null over no value", body = etl_domain::FlowMetrics),
        (status = 422, description = "A query parameter is invalid", body = ErrorBody),
    ),
    security(("bearer" = [])),
)]
pub async fn flow_metrics(
    state: web::Data<AppState>,
    tenant: Tenant,
    query: web::Query<FlowMetricsQuery>,
) -> Result<HttpResponse, ApiError> {
    let FlowMetricsQuery {
        project_key,
        repository,
        since,
        until,
    } = query.into_inner();
    let mut fields = Fields::default();
    fields.text("project_key", project_key.as_deref());
    fields.text("repository", repository.as_deref());
    let since = fields.take("since", instant(since));
    let until = fields.take("until", instant(until));
    if since.unwrap_or(DateTime::<Utc>::MIN_UTC) >= until.unwrap_or_else(Utc::now) {
        fields.note("since", "must be before `until`");
    }
    fields.finish()?;
    // Alike requests share their next computation (`NextRound`): it starts
    // after each of them arrived, so every one sees what was committed
    // before it asked; a missing `until` is that computation's now.
    let key = (
        tenant.claimed_id().get(),
        since,
        until,
        project_key.clone(),
        repository.clone(),
    );
    let pool = state.pool.clone();
    let compute = move || {
        let (pool, tenant) = (pool.clone(), tenant.clone());
        let (project_key, repository) = (project_key.clone(), repository.clone());
        async move {
            let until = until.unwrap_or_else(Utc::now);
            let since = since.unwrap_or(until - chrono::Duration::days(FLOW_WINDOW_DAYS));
            // The two halves on two connections at once: a round costs the
            // slower of them, not their sum.
            let work_items = blocking_as(&pool, &tenant, move |conn, tenant| {
                let window = etl_store::flow::FlowWindow {
                    since,
                    until,
                    project_key: project_key.as_deref(),
                    repository: None,
                };
                Ok(etl_store::flow::work_item_flow(conn, tenant, window)?)
            });
            let pull_requests = blocking_as(&pool, &tenant, move |conn, tenant| {
                let window = etl_store::flow::FlowWindow {
                    since,
                    until,
                    project_key: None,
                    repository: repository.as_deref(),
                };
                Ok(etl_store::flow::pull_request_flow(conn, tenant, window)?)
            });
            let (work_items, pull_requests) = tokio::try_join!(work_items, pull_requests)?;
            Ok(etl_domain::FlowMetrics {
                work_items,
                pull_requests,
            })
        }
    };
    let metrics = state
        .flow_rounds
        .join(key, compute)
        .await
        .unwrap_or_else(|| Err(ApiError::internal("the flow figures' computation stopped")))?;
    Ok(HttpResponse::Ok().json(metrics))
}
