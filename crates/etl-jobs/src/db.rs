//! The job machinery's door to synchronous Diesel.

use etl_store::{PgConnection, PgPool};

use crate::JobsError;

/// Runs `work` with a pooled connection on tokio's blocking pool: the job
/// machinery's one door to synchronous Diesel.
pub async fn db<T, F>(pool: &PgPool, work: F) -> Result<T, JobsError>
where
    F: FnOnce(&mut PgConnection) -> Result<T, JobsError> + Send + 'static,
    T: Send + 'static,
{
    let pool = pool.clone();
    // Created here, so that it is a child of the caller's span (a job's).
    let span = tracing::debug_span!("db");
    tokio::task::spawn_blocking(move || {
        let _entered = span.enter();
        let mut conn = pool.get()?;
        work(&mut conn)
    })
    .await?
}
