//! The operator's console (SPEC §5 "Dashboard"): `GET /stats`, one
//! tenant's figures, and `GET /dashboard`, the page that shows them.

use std::collections::BTreeMap;

use actix_web::{web, HttpResponse};
use chrono::{TimeZone, Utc};
use etl_domain::{FailureStats, JobAgeStats, MinuteStats, OutboxStats, StatsResponse};
use etl_store::stats::{self, Count};

use crate::error::ApiError;
use crate::extract::Tenant;
use crate::state::AppState;
use crate::tenancy::blocking_as;

/// `GET /stats` → the token's tenant's figures.
#[utoipa::path(
    get, path = "/api/v1/etl/stats", tag = "operations",
    responses(
        (status = 200, description = "Raw records and jobs by status, the outbox, failures by code, rows loaded per minute", body = StatsResponse),
    ),
    security(("bearer" = [])),
)]
pub async fn stats(state: web::Data<AppState>, tenant: Tenant) -> Result<HttpResponse, ApiError> {
    let figures = blocking_as(&state.pool, &tenant, move |conn, tenant| {
        Ok(stats::for_tenant(conn, tenant)?)
    })
    .await?;
    let body = StatsResponse {
        raw_records: nested(figures.raw_records),
        jobs: nested(figures.jobs),
        outbox: OutboxStats {
            pending: figures.outbox_pending,
            oldest_pending_age_s: figures.outbox_oldest_age_s,
        },
        job_ages: JobAgeStats {
            oldest_waiting_s: figures.oldest_waiting_job_age_s,
            oldest_running_s: figures.oldest_running_job_age_s,
        },
        failures: figures
            .failures
            .into_iter()
            .map(|f| FailureStats {
                entity_type: f.entity_type,
                code: f.code,
                count: f.count,
                sample: f.sample,
            })
            .collect(),
        loaded_per_minute: figures
            .loaded_per_minute
            .into_iter()
            .map(|m| MinuteStats {
                minute: Utc.from_utc_datetime(&m.minute),
                rows: m.rows,
            })
            .collect(),
    };
    Ok(HttpResponse::Ok().json(body))
}

fn nested(counts: Vec<Count>) -> BTreeMap<String, BTreeMap<String, i64>> {
    let mut by_kind: BTreeMap<String, BTreeMap<String, i64>> = BTreeMap::new();
    for count in counts {
        *by_kind
            .entry(count.kind)
            .or_default()
            .entry(count.status)
            .or_default() += count.count;
    }
    by_kind
}

/// The dashboard's three files, compiled into the binary: no CDN, no build
/// step, nothing to deploy beside it.
const DASHBOARD_HTML: &str = include_str!("../dashboard/index.html");
const DASHBOARD_JS: &str = include_str!("../dashboard/app.js");
const DASHBOARD_CSS: &str = include_str!("../dashboard/app.css");

/// Only this origin: no script, style, font or request elsewhere, no inline
/// script, no framing, no form posting anywhere.
const DASHBOARD_CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
     connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; \
     frame-ancestors 'none'";

fn dashboard_file(content_type: &str, body: &'static str) -> HttpResponse {
    super::page_file(content_type, DASHBOARD_CSP, body)
}

/// `GET /dashboard`: the page. It needs no token to load; it asks for one
/// and sends it only to this origin's API.
pub async fn dashboard() -> HttpResponse {
    dashboard_file("text/html; charset=utf-8", DASHBOARD_HTML)
}

pub async fn dashboard_js() -> HttpResponse {
    dashboard_file("text/javascript; charset=utf-8", DASHBOARD_JS)
}

pub async fn dashboard_css() -> HttpResponse {
    dashboard_file("text/css; charset=utf-8", DASHBOARD_CSS)
}
