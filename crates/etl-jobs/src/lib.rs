//! Job machinery (SPEC §8): the outbox relay that publishes committed jobs,
//! the workers that run them, their heartbeats, and the rescuer of jobs
//! whose worker died.
//!
//! What a job *does* is not here: handlers plug in through [`JobHandler`].
//! The rules are:
//! - a job is published only after its row is committed, and marked
//!   `queued` only after the broker confirms ([`relay`]);
//! - a worker claims the row before running and acks the message only after
//!   the job's effects and its `completed` status are committed together; a
//!   delivery of a job that is not claimable changes nothing ([`worker`]);
//! - a failed attempt is retried with exponential backoff and jitter until
//!   `max_retries`, then the job is `failed` and its message dead-lettered;
//!   a rescued job (stale heartbeat) counts as an attempt ([`rescuer`]).

mod backoff;
mod db;
pub mod janitor;
pub mod lease;
pub mod metrics;
pub mod outbox;
pub mod pruner;
pub mod relay;
pub mod republisher;
pub mod rescuer;
pub mod runtime;
pub mod statistics;
pub mod worker;

pub use backoff::Backoff;

pub use etl_domain::DEFAULT_MAX_MESSAGE_BYTES;
pub use metrics::QueueMetrics;
pub use worker::{Handlers, JobFailure, JobHandler};

/// Errors of the job machinery's own plumbing.
#[derive(Debug, thiserror::Error)]
pub enum JobsError {
    #[error(transparent)]
    Store(#[from] etl_store::StoreError),
    #[error(transparent)]
    Queue(#[from] etl_queue::QueueError),
    #[error("blocking task failed: {0}")]
    Join(#[from] tokio::task::JoinError),
}

impl From<etl_store::QueryError> for JobsError {
    fn from(error: etl_store::QueryError) -> Self {
        Self::Store(error.into())
    }
}

impl From<etl_store::PoolError> for JobsError {
    fn from(error: etl_store::PoolError) -> Self {
        Self::Store(error.into())
    }
}
