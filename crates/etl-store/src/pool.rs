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
    /// Every session's `statement_timeout` (`ETL_DB_STATEMENT_TIMEOUT_MS`):
    /// the bound of an HTTP request's statements. Jobs raise it for their
    /// own transaction ([`JOB_SESSION_LIMITS`]).
    pub statement_timeout: Option<Duration>,
    /// Every session's `lock_timeout` (`ETL_DB_LOCK_TIMEOUT_MS`).
    pub lock_timeout: Option<Duration>,
}

/// What a job's transaction runs under instead of the HTTP bounds: a
/// 100,000-row load may take minutes on a busy server, but not forever.
/// Run it (`SET LOCAL`) first thing in the transaction.
pub const JOB_SESSION_LIMITS: &str =
    "SET LOCAL statement_timeout = '15min'; SET LOCAL lock_timeout = '2min'";

/// libpq parameters every session gets unless `DATABASE_URL` sets them: a
/// bounded connect, and TCP keepalives (with a user timeout) so that a
/// server that vanished (a failover, a cut cable) is noticed within about a
/// minute instead of the kernel's two hours.
const SESSION_PARAMETERS: &[(&str, &str)] = &[
    ("connect_timeout", "5"),
    ("keepalives", "1"),
    ("keepalives_idle", "30"),
    ("keepalives_interval", "10"),
    ("keepalives_count", "3"),
    ("tcp_user_timeout", "60000"),
];

/// `url` with [`SESSION_PARAMETERS`] added where it does not set them
/// itself. A key=value connection string is left as it is.
pub fn with_session_parameters(url: &str) -> String {
    if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
        return url.to_owned();
    }
    let query = url.split_once('?').map_or("", |(_, q)| q);
    let has = |name: &str| {
        query
            .split('&')
            .any(|pair| pair.split('=').next() == Some(name))
    };
    let mut out = url.to_owned();
    for (name, value) in SESSION_PARAMETERS {
        if has(name) {
            continue;
        }
        out.push(if out.contains('?') { '&' } else { '?' });
        out.push_str(name);
        out.push('=');
        out.push_str(value);
    }
    out
}

impl PoolConfig {
    pub const DEFAULT_MAX_SIZE: u32 = 10;
    pub const DEFAULT_CHECKOUT_TIMEOUT: Duration = Duration::from_secs(5);

    pub fn new(database_url: impl Into<String>) -> Self {
        Self {
            database_url: database_url.into(),
            max_size: Self::DEFAULT_MAX_SIZE,
            checkout_timeout: Self::DEFAULT_CHECKOUT_TIMEOUT,
            statement_timeout: None,
            lock_timeout: None,
        }
    }
}

/// Every session runs in UTC, so `now()` defaults on `timestamp` columns and
/// the naive timestamps we read back mean the same thing on every server;
/// under the configured statement and lock timeouts, so no request waits
/// without bound; and without JIT compilation: our statements touch
/// thousands of rows by index, and a plan whose estimate passes
/// `jit_above_cost` (a recompute over bound arrays does) spent a second
/// compiling to save milliseconds.
#[derive(Debug)]
struct SessionSetup {
    sql: String,
}

impl SessionSetup {
    fn new(config: &PoolConfig) -> Self {
        let mut sql = String::from("SET TIME ZONE 'UTC'; SET jit = off");
        let ms = |d: Duration| d.as_millis().max(1);
        if let Some(timeout) = config.statement_timeout {
            sql.push_str(&format!("; SET statement_timeout = {}", ms(timeout)));
        }
        if let Some(timeout) = config.lock_timeout {
            sql.push_str(&format!("; SET lock_timeout = {}", ms(timeout)));
        }
        Self { sql }
    }
}

impl CustomizeConnection<PgConnection, diesel::r2d2::Error> for SessionSetup {
    fn on_acquire(&self, conn: &mut PgConnection) -> Result<(), diesel::r2d2::Error> {
        conn.batch_execute(&self.sql)
            .map_err(diesel::r2d2::Error::QueryError)
    }
}

/// Builds the pool without connecting: the service starts (and `/ready`
/// reports the database as down) even when PostgreSQL is not up yet.
pub fn build_pool(config: &PoolConfig) -> PgPool {
    let manager =
        ConnectionManager::<PgConnection>::new(with_session_parameters(&config.database_url));
    Pool::builder()
        .max_size(config.max_size)
        // Keep no idle connections warm at start-up: connecting lazily lets
        // the process start while the database is down.
        .min_idle(Some(0))
        .connection_timeout(config.checkout_timeout)
        // A broken connection is noticed by `has_broken` after a failed
        // query; a round trip per checkout would cost more than it saves.
        .test_on_check_out(false)
        .connection_customizer(Box::new(SessionSetup::new(config)))
        .build_unchecked(manager)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn session_parameters_are_added_unless_the_url_sets_them() {
        let url = with_session_parameters("postgres://u@h/db");
        assert!(url.starts_with("postgres://u@h/db?connect_timeout=5&keepalives=1&"));
        let url = with_session_parameters("postgres://u@h/db?sslmode=require&connect_timeout=2");
        assert!(url.contains("connect_timeout=2"));
        assert!(!url.contains("connect_timeout=5"));
        assert!(url.contains("&keepalives_idle=30"));
        assert_eq!(
            with_session_parameters("host=h dbname=db"),
            "host=h dbname=db"
        );
    }
}
