use std::time::Duration;

use etl_store::PgPool;

use crate::auth::JwtKeys;
use crate::metrics::Metrics;

/// What every handler can reach. Cheap to clone (everything inside is shared).
#[derive(Clone)]
pub struct AppState {
    pub pool: PgPool,
    pub jwt: JwtKeys,
    pub metrics: Metrics,
    /// How long `/ready` waits for a database connection.
    pub ready_timeout: Duration,
}

impl AppState {
    pub fn new(pool: PgPool, jwt: JwtKeys) -> Self {
        Self {
            pool,
            jwt,
            metrics: Metrics::new(),
            ready_timeout: Duration::from_secs(2),
        }
    }
}
