//! `Idempotency-Key` handling shared by the routes that create things.

use actix_web::http::StatusCode;
use actix_web::HttpResponse;
use etl_domain::IdempotencyKey;
use etl_store::idempotency::{self, Claim};
use etl_store::PgConnection;
use serde::Serialize;

use crate::blocking;
use crate::error::ApiError;
use crate::extract::Tenant;
use crate::state::AppState;
use crate::tenancy::activate;

/// A success answer as stored for replays: status and JSON body.
pub type Answer = (StatusCode, serde_json::Value);

pub fn answer<T: Serialize>(status: StatusCode, body: &T) -> Result<Answer, ApiError> {
    let body = serde_json::to_value(body).map_err(ApiError::internal)?;
    Ok((status, body))
}

/// Header set on a replayed answer.
const REPLAYED_HEADER: &str = "idempotent-replayed";

/// Runs `work` once per (tenant, route, key). Without a key it just runs.
/// With one, the claim of the key, the work and the recorded answer commit
/// together; a repeat gets the recorded answer and runs nothing. Returns the
/// response and whether the work ran (`false` for a replay).
pub async fn idempotent<F>(
    state: &AppState,
    tenant: &Tenant,
    route: &'static str,
    key: Option<IdempotencyKey>,
    work: F,
) -> Result<(HttpResponse, bool), ApiError>
where
    F: FnOnce(&mut PgConnection) -> Result<Answer, ApiError> + Send + 'static,
{
    let Some(key) = key else {
        let (status, body) = blocking(&state.pool, work).await?;
        return Ok((HttpResponse::build(status).json(body), true));
    };
    let tenant = tenant.clone();
    let (status, body, fresh) = blocking(&state.pool, move |conn| {
        use etl_store::Connection as _;
        conn.transaction(|conn| {
            let tenant = activate(conn, &tenant)?;
            match idempotency::claim(conn, tenant, route, key.as_str())? {
                Claim::Answered { status, body } => {
                    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::OK);
                    Ok((status, body, false))
                }
                Claim::Fresh => {
                    let (status, body) = work(conn)?;
                    idempotency::record(conn, tenant, route, key.as_str(), status.as_u16(), &body)?;
                    Ok((status, body, true))
                }
            }
        })
    })
    .await?;
    let mut response = HttpResponse::build(status);
    if !fresh {
        response.insert_header((REPLAYED_HEADER, "true"));
    }
    Ok((response.json(body), fresh))
}
