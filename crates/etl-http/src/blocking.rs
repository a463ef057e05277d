//! The one door from async handlers to synchronous Diesel: a pooled
//! connection on tokio's blocking pool, inside a tracing span.

use actix_web::web;
use etl_store::{PgConnection, PgPool};
use tracing::Instrument;

use crate::error::ApiError;

/// Runs `work` with a pooled connection on actix's blocking thread pool: the
/// one way handlers reach the (synchronous) database. Checkout is bounded by
/// the pool's timeout, so an unreachable database becomes a 503, not a hang.
pub async fn blocking<T, F>(pool: &PgPool, work: F) -> Result<T, ApiError>
where
    F: FnOnce(&mut PgConnection) -> Result<T, ApiError> + Send + 'static,
    T: Send + 'static,
{
    let pool = pool.clone();
    let span = tracing::debug_span!("db");
    let outcome = web::block(move || {
        let _entered = span.enter();
        let mut conn = pool.get()?;
        work(&mut conn)
    })
    .instrument(tracing::Span::current())
    .await;
    outcome.map_err(|e| ApiError::internal(format!("blocking task failed: {e}")))?
}
