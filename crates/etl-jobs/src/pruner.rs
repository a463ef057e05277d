//! Retention as a background task (SPEC §11): a pass every `every`, in
//! `serve` and `worker` alike; the advisory lock inside the pass lets one
//! process at a time do it across a deployment, the others skip their turn.

use std::time::Duration;

use etl_store::retention::{self, PassError, PassMode, RetentionPolicy};
use etl_store::PgPool;
use tokio::sync::watch;

use crate::db::db;
use crate::QueueMetrics;

/// What is kept, and how often a pass runs.
#[derive(Debug, Clone, Copy)]
pub struct RetentionConfig {
    pub policy: RetentionPolicy,
    pub every: Duration,
}

impl Default for RetentionConfig {
    fn default() -> Self {
        Self {
            policy: RetentionPolicy::default(),
            every: Duration::from_secs(600),
        }
    }
}

/// Prunes every `config.every` until `shutdown`, counting the rows in
/// `/metrics` as each batch commits.
pub async fn run(
    pool: PgPool,
    config: RetentionConfig,
    metrics: QueueMetrics,
    mut shutdown: watch::Receiver<bool>,
) {
    while !*shutdown.borrow() {
        let counter = metrics.rows_pruned.clone();
        let outcome = db(&pool, move |conn| {
            Ok(retention::run_pass(
                conn,
                config.policy,
                PassMode::Delete,
                |kind, n| counter.with_label_values(&[kind.as_str()]).inc_by(n as u64),
            ))
        })
        .await;
        match outcome {
            Ok(Ok(pruned)) if pruned.raw_records + pruned.jobs > 0 => tracing::info!(
                raw_records = pruned.raw_records,
                jobs = pruned.jobs,
                "pruned finished rows past their retention"
            ),
            Ok(Ok(_)) => {}
            Ok(Err(PassError::Busy)) => tracing::debug!("another process is pruning"),
            Ok(Err(error)) => tracing::warn!(%error, "retention pass failed"),
            Err(error) => tracing::warn!(%error, "retention pass failed"),
        }
        tokio::select! {
            _ = tokio::time::sleep(config.every) => {}
            _ = shutdown.changed() => {}
        }
    }
}
