//! Operations routes: no prefix, no token.

use actix_web::http::header;
use actix_web::{web, HttpResponse};
use serde_json::json;

use crate::state::AppState;

/// `GET /health`: the process is up. Touches nothing else, so it stays 200
/// while dependencies come and go.
pub async fn health() -> HttpResponse {
    HttpResponse::Ok().json(json!({"status": "ok"}))
}

/// `GET /ready`: 200 when every dependency answers, else 503 naming the ones
/// that do not. Each check is bounded in time.
pub async fn ready(state: web::Data<AppState>) -> HttpResponse {
    let database = database_state(&state).await;
    let checks = json!({ "database": database.as_str() });
    if database == DatabaseState::Ok {
        return HttpResponse::Ok().json(json!({"status": "ready", "checks": checks}));
    }
    let detail = match database {
        DatabaseState::MigrationsPending => "Not ready: database migrations are pending",
        _ => "Not ready: database is down",
    };
    HttpResponse::ServiceUnavailable()
        .insert_header((header::RETRY_AFTER, "5"))
        .json(json!({
            "status": "unavailable",
            "detail": detail,
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
pub async fn metrics(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .body(state.metrics.render())
}
