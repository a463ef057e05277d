use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;

use etl_store::PgPool;

use crate::auth::JwtKeys;
use crate::metrics::Metrics;
use crate::store_writer::{StoreWriter, StoreWriterConfig};

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
    /// How long `/ready` waits for a database connection.
    pub ready_timeout: Duration,
}

impl AppState {
    pub fn new(pool: PgPool, jwt: JwtKeys) -> Self {
        Self {
            store_writer: StoreWriter::start(pool.clone(), StoreWriterConfig::default()),
            pool,
            jwt,
            metrics: Metrics::new(),
            jobs_created: Arc::new(Notify::new()),
            ready_timeout: Duration::from_secs(2),
        }
    }
}
