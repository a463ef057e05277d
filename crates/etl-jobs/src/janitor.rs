//! Housekeeping: forgets `Idempotency-Key` answers once they are older than
//! the retention (24 h by default), so the table does not grow for ever, and
//! folds the console's counters of backends that have gone
//! (`stats::compact_counts`), so that they stay a few rows per tenant.

use std::time::Duration;

use etl_store::{idempotency, stats, PgPool};
use tokio::sync::watch;

use crate::db::db;

/// How long a key's first answer is replayed.
pub const IDEMPOTENCY_RETENTION: Duration = Duration::from_secs(24 * 60 * 60);

/// Sweeps every `every` until `shutdown`.
pub async fn run(
    pool: PgPool,
    every: Duration,
    retention: Duration,
    mut shutdown: watch::Receiver<bool>,
) {
    while !*shutdown.borrow() {
        let cutoff = chrono::Utc::now().naive_utc()
            - chrono::Duration::from_std(retention).unwrap_or(chrono::Duration::days(1));
        match db(&pool, move |conn| {
            Ok(idempotency::forget_before(conn, cutoff)?)
        })
        .await
        {
            Ok(0) => {}
            Ok(forgotten) => tracing::info!(forgotten, "forgot old idempotency keys"),
            Err(error) => tracing::warn!(%error, "idempotency sweep failed"),
        }
        match db(&pool, |conn| Ok(stats::compact_counts(conn)?)).await {
            Ok(0) => {}
            Ok(folded) => tracing::debug!(folded, "folded the counters of gone backends"),
            Err(error) => tracing::warn!(%error, "folding the counters of gone backends failed"),
        }
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = shutdown.changed() => {}
        }
    }
}
