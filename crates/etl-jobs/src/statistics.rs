//! Keeps the planner's statistics of the final tables fresh while workers
//! load them (`etl_store::planner`): a process that runs workers analyzes
//! the tables a bulk load has outgrown, every few seconds.

use std::time::Duration;

use etl_store::{planner, PgPool};
use tokio::sync::watch;

use crate::db::db;

/// How often the tables are looked at.
pub const EVERY: Duration = Duration::from_secs(5);

/// Looks every `every` until `shutdown`.
pub async fn run(pool: PgPool, every: Duration, mut shutdown: watch::Receiver<bool>) {
    while !*shutdown.borrow() {
        match db(&pool, |conn| Ok(planner::analyze_stale(conn)?)).await {
            Ok(tables) if tables.is_empty() => {}
            Ok(tables) => tracing::debug!(?tables, "analyzed tables a load outgrew"),
            Err(error) => tracing::warn!(%error, "analyzing the final tables failed"),
        }
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = shutdown.changed() => {}
        }
    }
}
