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
    tokio::task::spawn_blocking(move || {
        let mut conn = pool.get()?;
        work(&mut conn)
    })
    .await?
}
