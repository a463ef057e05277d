//! Rescues jobs whose worker died: a running job whose heartbeat is older
//! than `stale_after` goes back to `pending` (or to `failed` once out of
//! attempts). A rescue counts as an attempt, so a job that kills every
//! worker that runs it ends `failed` instead of looping.

use std::time::Duration;

use etl_domain::{JobErrorCode, JobId, JobType};
use etl_store::jobs::{self, AttemptBy, AttemptOutcome};
use etl_store::{Connection as _, PgPool};
use serde_json::json;
use tokio::sync::watch;

use crate::db::db;
use crate::Backoff;

#[derive(Debug, Clone)]
pub struct RescuerConfig {
    /// How often to look.
    pub every: Duration,
    /// A heartbeat older than this means the worker is gone.
    pub stale_after: Duration,
    pub job_types: Vec<JobType>,
    pub retry_base: Duration,
    pub retry_max: Duration,
}

impl Default for RescuerConfig {
    fn default() -> Self {
        Self {
            every: Duration::from_secs(10),
            stale_after: Duration::from_secs(60),
            job_types: vec![JobType::Transform, JobType::Load],
            retry_base: Duration::from_secs(2),
            retry_max: Duration::from_secs(300),
        }
    }
}

/// Looks once; returns how many jobs it rescued.
pub async fn rescue_once(pool: &PgPool, config: &RescuerConfig) -> Result<usize, crate::JobsError> {
    let stale_after = config.stale_after;
    let types = config.job_types.clone();
    let backoff = Backoff::new(config.retry_base, config.retry_max);
    db(pool, move |conn| {
        let stale = jobs::stale_running(conn, &types, stale_after)?;
        let details = json!({"code": JobErrorCode::WorkerLost, "message": "The worker running this job stopped beating; it is retried."});
        let mut rescued = 0;
        for id in stale {
            // The heartbeat is judged again under the row's lock: a worker
            // that beat since the look above keeps its job.
            let by = AttemptBy::Rescuer { stale_after };
            let outcome = conn.transaction(|conn| {
                jobs::fail_attempt(conn, JobId::new(id), by, &details, true, |n| {
                    chrono::Duration::from_std(backoff.delay(u32::try_from(n).unwrap_or(1)))
                        .unwrap_or(chrono::Duration::seconds(1))
                })
            })?;
            if outcome == AttemptOutcome::NotOwned {
                continue;
            }
            tracing::warn!(job_id = id, ?outcome, "rescued a job whose worker stopped");
            rescued += 1;
        }
        Ok(rescued)
    })
    .await
}

/// Runs until `shutdown` turns true.
pub async fn run(pool: PgPool, config: RescuerConfig, mut shutdown: watch::Receiver<bool>) {
    while !*shutdown.borrow() {
        if let Err(error) = rescue_once(&pool, &config).await {
            tracing::warn!(%error, "rescuer cannot reach PostgreSQL");
        }
        tokio::select! {
            _ = tokio::time::sleep(config.every) => {}
            _ = shutdown.changed() => {}
        }
    }
}
