//! `AppState`: what every handler can reach (pool, keys, metrics, the
//! store writer, readiness checks, limits).

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;

use etl_store::PgPool;

use crate::auth::JwtKeys;
use crate::metrics::Metrics;
use crate::store_writer::{StoreWriter, StoreWriterConfig};

/// A dependency `/ready` reports on besides PostgreSQL.
#[derive(Clone)]
pub struct ReadinessCheck {
    pub name: &'static str,
    pub is_up: Arc<dyn Fn() -> bool + Send + Sync>,
}

/// What every handler can reach. Cheap to clone (everything inside is shared).
#[derive(Clone)]
pub struct AppState {
    pub pool: PgPool,
    pub jwt: JwtKeys,
    pub metrics: Metrics,
    /// Group-commit writer of single-record stores.
    pub store_writer: StoreWriter,
    /// Poked after jobs are committed, so a relay in this process publishes
    /// them at once instead of at its next poll.
    pub jobs_created: Arc<Notify>,
    /// Other dependencies `/ready` checks (RabbitMQ in amqp mode).
    pub checks: Vec<ReadinessCheck>,
    /// How long `/ready` waits for a database connection.
    pub ready_timeout: Duration,
    /// `ETL_MAX_MESSAGE_BYTES`: a `POST /load` whose rows cannot fit one
    /// message is refused (413).
    pub max_message_bytes: usize,
    /// `ETL_MAX_RESPONSE_BYTES`: the largest list answer (SPEC §5).
    pub max_response_bytes: usize,
    /// `GET /flow-metrics` requests alike share their next computation.
    pub flow_rounds: Arc<
        crate::next_round::NextRound<FlowKey, Result<etl_domain::FlowMetrics, crate::ApiError>>,
    >,
}

/// What a `GET /flow-metrics` answer depends on: the tenant and the query
/// as sent (an unset `until` is the computation's now).
pub type FlowKey = (
    i32,
    Option<chrono::DateTime<chrono::Utc>>,
    Option<chrono::DateTime<chrono::Utc>>,
    Option<String>,
    Option<String>,
);

impl AppState {
    pub fn new(pool: PgPool, jwt: JwtKeys) -> Self {
        Self {
            store_writer: StoreWriter::start(pool.clone(), StoreWriterConfig::default()),
            pool,
            jwt,
            metrics: Metrics::new(),
            jobs_created: Arc::new(Notify::new()),
            checks: Vec::new(),
            ready_timeout: Duration::from_secs(2),
            max_message_bytes: etl_domain::DEFAULT_MAX_MESSAGE_BYTES,
            max_response_bytes: crate::bounded::DEFAULT_MAX_RESPONSE_BYTES,
            flow_rounds: Arc::default(),
        }
    }

    pub fn with_max_message_bytes(mut self, max: usize) -> Self {
        self.max_message_bytes = max;
        self
    }

    pub fn with_max_response_bytes(mut self, max: usize) -> Self {
        self.max_response_bytes = max;
        self
    }

    /// Shares metrics (and their registry) with other components.
    pub fn with_metrics(mut self, metrics: Metrics) -> Self {
        self.metrics = metrics;
        self
    }

    /// Shares the "jobs were committed" signal with a relay or workers.
    pub fn with_jobs_notifier(mut self, notifier: Arc<Notify>) -> Self {
        self.jobs_created = notifier;
        self
    }

    /// Replaces the store writer (one over another pool, in tests).
    pub fn with_store_writer(mut self, writer: StoreWriter) -> Self {
        self.store_writer = writer;
        self
    }

    pub fn with_check(mut self, check: ReadinessCheck) -> Self {
        self.checks.push(check);
        self
    }
}
