//! Operations routes: no prefix, no token.

use actix_web::http::header;
use actix_web::{web, HttpResponse};
use serde_json::json;

use crate::state::AppState;

/// `GET /health`: the process is up. Touches nothing else, so it stays 200
/// while dependencies come and go.
#[utoipa::path(get, path = "/health", tag = "operations",
    responses((status = 200, description = "The process runs", body = Object, example = json!({"status": "ok"}))))]
pub async fn health() -> HttpResponse {
    HttpResponse::Ok().json(json!({"status": "ok"}))
}

/// `GET /ready`: 200 when every dependency answers, else 503 naming the ones
/// that do not. Each check is bounded in time.
#[utoipa::path(get, path = "/ready", tag = "operations",
    responses(
        (status = 200, description = "PostgreSQL answers and the schema is current", body = Object),
        (status = 503, description = "A dependency is down; `checks` names it", body = Object),
    ))]
pub async fn ready(state: web::Data<AppState>) -> HttpResponse {
    // The store writer's threads keep their own state (running, last group
    // reached PostgreSQL, none stuck): read at once, never queued behind
    // the records they are storing.
    let writer_up = state.store_writer.is_up();
    let database = database_state(&state).await;
    let mut checks = serde_json::Map::new();
    checks.insert("database".to_owned(), json!(database.as_str()));
    checks.insert(
        "store_writer".to_owned(),
        json!(if writer_up { "ok" } else { "down" }),
    );
    let mut down: Vec<String> = Vec::new();
    match database {
        DatabaseState::Ok => {}
        DatabaseState::MigrationsPending => down.push("database migrations are pending".to_owned()),
        DatabaseState::Down => down.push("database is down".to_owned()),
    }
    if !writer_up {
        down.push("store writer is down".to_owned());
    }
    for check in &state.checks {
        let up = (check.is_up)();
        checks.insert(check.name.to_owned(), json!(if up { "ok" } else { "down" }));
        if !up {
            down.push(format!("{} is down", check.name));
        }
    }
    if down.is_empty() {
        return HttpResponse::Ok().json(json!({"status": "ready", "checks": checks}));
    }
    HttpResponse::ServiceUnavailable()
        .insert_header((header::RETRY_AFTER, "5"))
        .json(json!({
            "status": "unavailable",
            "detail": format!("Not ready: {}", down.join(", ")),
            "code": "service_unavailable",
            "checks": checks,
        }))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum DatabaseState {
    Ok,
    Down,
    /// Reachable, but the schema is behind this binary's migrations.
    MigrationsPending,
}

impl DatabaseState {
    fn as_str(self) -> &'static str {
        match self {
            Self::Ok => "ok",
            Self::Down => "down",
            Self::MigrationsPending => "migrations_pending",
        }
    }
}

async fn database_state(state: &AppState) -> DatabaseState {
    let pool = state.pool.clone();
    let timeout = state.ready_timeout;
    let checked = web::block(move || {
        let Ok(mut conn) = pool.get_timeout(timeout) else {
            return DatabaseState::Down;
        };
        // A real round trip: a pooled connection may have died with the
        // server; the failed query marks it broken and the pool drops it.
        match etl_store::migrations::has_pending(&mut conn) {
            Ok(false) => DatabaseState::Ok,
            Ok(true) => DatabaseState::MigrationsPending,
            Err(_) => DatabaseState::Down,
        }
    })
    .await;
    checked.unwrap_or(DatabaseState::Down)
}

/// `GET /metrics`: Prometheus text format.
#[utoipa::path(get, path = "/metrics", tag = "operations",
    responses((status = 200, description = "Prometheus text format", body = String, content_type = "text/plain")))]
pub async fn metrics(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .body(state.metrics.render())
}

/// `GET /api/v1/etl/openapi.json`: this API's OpenAPI 3 document.
#[utoipa::path(get, path = "/api/v1/etl/openapi.json", tag = "operations",
    responses((status = 200, description = "OpenAPI 3 document of every route", body = Object)))]
pub async fn openapi() -> HttpResponse {
    HttpResponse::Ok().json(crate::openapi::document())
}
