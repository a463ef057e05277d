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
    // The caller's span (a job's) is entered on the blocking thread too, so
    // the handler's log lines carry its fields even where the `db` span is
    // filtered out.
    let parent = tracing::Span::current();
    let span = tracing::debug_span!(parent: &parent, "db");
    tokio::task::spawn_blocking(move || {
        let _parent = parent.enter();
        let _entered = span.enter();
        let mut conn = pool.get()?;
        work(&mut conn)
    })
    .await?
}
