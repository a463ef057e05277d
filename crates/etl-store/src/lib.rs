//! PostgreSQL adapter of the ETL service: the pool, the embedded migrations
//! and one repository module per table.
//!
//! Repository functions take `&mut PgConnection` and return
//! [`QueryResult`](diesel::QueryResult); callers decide the transaction. Only
//! this crate sees `schema.rs`: other crates get row structs and domain types.

pub mod derive;
pub mod faults;
pub mod flow;
pub mod idempotency;
pub mod integrations;
pub mod jobs;
pub mod json_text;
pub mod leases;
pub mod loaders;
pub mod migrations;
pub mod planner;
pub mod pool;
pub mod raw_records;
pub mod retention;
mod schema;
pub mod seed;
pub mod stats;
pub mod tenants;
#[cfg(feature = "test-support")]
pub mod test_support;

pub use diesel::connection::SimpleConnection;
pub use diesel::result::{DatabaseErrorKind, Error as QueryError};
pub use diesel::{Connection, PgConnection, QueryResult};
pub use faults::Fault;
pub use json_text::JsonText;
pub use pool::{
    build_pool, with_session_parameters, PgPool, PgPooled, PoolConfig, PoolError,
    JOB_SESSION_LIMITS,
};

/// Errors of store operations beyond a single query.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database query failed")]
    Query(#[from] diesel::result::Error),
    #[error("could not connect to the database")]
    Connect(#[from] diesel::ConnectionError),
    #[error("no database connection available")]
    Pool(#[from] PoolError),
    #[error("migration failed: {0}")]
    Migration(Box<dyn std::error::Error + Send + Sync>),
}

/// Whether an error means the database could not be reached (as opposed to
/// a query it refused): the HTTP layer answers those with 503.
pub fn is_unavailable(error: &diesel::result::Error) -> bool {
    use diesel::result::{DatabaseErrorKind, Error};
    match error {
        Error::DatabaseError(DatabaseErrorKind::ClosedConnection, _) => true,
        // libpq reports a dropped server as an unknown error whose message
        // says the connection was lost.
        Error::DatabaseError(DatabaseErrorKind::Unknown, info) => {
            let message = info.message();
            message.contains("server closed the connection")
                || message.contains("no connection to the server")
                || message.contains("terminating connection")
                || message.contains("could not receive data")
                || message.contains("could not send data")
                // `statement_timeout`, `lock_timeout`: the request waited
                // its bound; retrying later may well work.
                || message.contains("canceling statement due to")
                || message.contains("could not obtain lock")
        }
        _ => false,
    }
}

/// Opens a single connection set up like pooled ones (session in UTC).
pub fn connect(url: &str) -> Result<PgConnection, StoreError> {
    let mut conn = PgConnection::establish(&with_session_parameters(url))?;
    conn.batch_execute("SET TIME ZONE 'UTC'")?;
    Ok(conn)
}
