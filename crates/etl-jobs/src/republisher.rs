//! Publishes again the jobs a broker lost (SPEC §8). The relay marks a job
//! `queued` once the broker confirms its message; a queue purged or
//! deleted, a node lost with an unreplicated queue, or another deployment
//! on the same vhost taking the message leaves the job `queued` with no
//! message anywhere. A job `queued` for longer than `after` that no worker
//! started goes back to `pending`, and the relay publishes it again: within
//! `after` plus one look (`every`) of its last publication, and again after
//! each further such period. Consumers ignore a second message of a job
//! that runs or finished.

use std::sync::Arc;
use std::time::Duration;

use etl_domain::JobType;
use etl_store::{jobs, PgPool};
use tokio::sync::{watch, Notify};

use crate::db::db;

#[derive(Debug, Clone)]
pub struct RepublisherConfig {
    /// A job `queued` longer than this without a worker starting it is
    /// published again (`ETL_REPUBLISH_AFTER_S`).
    pub after: Duration,
    /// How often to look.
    pub every: Duration,
    pub job_types: Vec<JobType>,
}

impl RepublisherConfig {
    /// Looks every tenth of `after`, at most every 10 s, so a stranded job
    /// is published again within `after` + 10 s.
    pub fn new(after: Duration) -> Self {
        Self {
            after,
            every: (after / 10).clamp(Duration::from_millis(50), Duration::from_secs(10)),
            job_types: JobType::ALL.to_vec(),
        }
    }
}

/// Looks once; returns the ids of the jobs sent back to the relay.
pub async fn republish_once(
    pool: &PgPool,
    config: &RepublisherConfig,
) -> Result<Vec<i32>, crate::JobsError> {
    let types = config.job_types.clone();
    let after = config.after;
    db(pool, move |conn| {
        Ok(jobs::repend_stranded(conn, &types, after)?)
    })
    .await
}

/// Runs until `shutdown` turns true, waking the relay when it found jobs.
pub async fn run(
    pool: PgPool,
    config: RepublisherConfig,
    relay: Arc<Notify>,
    mut shutdown: watch::Receiver<bool>,
) {
    while !*shutdown.borrow() {
        match republish_once(&pool, &config).await {
            Ok(ids) if !ids.is_empty() => {
                tracing::warn!(
                    jobs = ids.len(),
                    first_job_id = ids[0],
                    after_s = config.after.as_secs(),
                    "jobs queued without a worker starting them are published again (their message was lost)"
                );
                relay.notify_one();
            }
            Ok(_) => {}
            Err(error) => tracing::warn!(%error, "republisher cannot reach PostgreSQL"),
        }
        tokio::select! {
            _ = tokio::time::sleep(config.every) => {}
            _ = shutdown.changed() => {}
        }
    }
}
