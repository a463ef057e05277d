//! The connection pool. Checkout is bounded in time so that a request made
//! while PostgreSQL is unreachable fails fast (and the HTTP layer answers 503)
//! instead of hanging.

use std::time::Duration;

use diesel::connection::SimpleConnection;
use diesel::r2d2::{ConnectionManager, CustomizeConnection, Pool, PooledConnection};
use diesel::PgConnection;

pub type PgPool = Pool<ConnectionManager<PgConnection>>;
pub type PgPooled = PooledConnection<ConnectionManager<PgConnection>>;
pub use diesel::r2d2::PoolError;

/// How to build the pool.
#[derive(Debug, Clone)]
pub struct PoolConfig {
    pub database_url: String,
    /// Most connections open at once (`ETL_DB_POOL_SIZE`).
    pub max_size: u32,
    /// Longest a caller waits for a connection before getting an error.
    pub checkout_timeout: Duration,
}

impl PoolConfig {
    pub const DEFAULT_MAX_SIZE: u32 = 10;
    pub const DEFAULT_CHECKOUT_TIMEOUT: Duration = Duration::from_secs(5);

    pub fn new(database_url: impl Into<String>) -> Self {
        Self {
            database_url: database_url.into(),
            max_size: Self::DEFAULT_MAX_SIZE,
            checkout_timeout: Self::DEFAULT_CHECKOUT_TIMEOUT,
        }
    }
}

/// Every session runs in UTC, so `now()` defaults on `timestamp` columns and
/// the naive timestamps we read back mean the same thing on every server.
#[derive(Debug)]
struct SessionSetup;

impl CustomizeConnection<PgConnection, diesel::r2d2::Error> for SessionSetup {
    fn on_acquire(&self, conn: &mut PgConnection) -> Result<(), diesel::r2d2::Error> {
        conn.batch_execute("SET TIME ZONE 'UTC'")
            .map_err(diesel::r2d2::Error::QueryError)
    }
}

/// Builds the pool without connecting: the service starts (and `/ready`
/// reports the database as down) even when PostgreSQL is not up yet.
pub fn build_pool(config: &PoolConfig) -> PgPool {
    let manager = ConnectionManager::<PgConnection>::new(&config.database_url);
    Pool::builder()
        .max_size(config.max_size)
        // Keep no idle connections warm at start-up: connecting lazily lets
        // the process start while the database is down.
        .min_idle(Some(0))
        .connection_timeout(config.checkout_timeout)
        // A broken connection is noticed by `has_broken` after a failed
        // query; a round trip per checkout would cost more than it saves.
        .test_on_check_out(false)
        .connection_customizer(Box::new(SessionSetup))
        .build_unchecked(manager)
}
