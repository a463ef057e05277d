//! Retention (SPEC §11): finished raw records and jobs older than their
//! setting are deleted, in bounded batches, by one process at a time.
//!
//! Each batch is one short statement of its own (a window of at most
//! [`PRUNE_BATCH_ROWS`] ids, rows other sessions hold skipped), so a pass
//! never holds a lock that stalls ingest, and is followed by a pause twice
//! as long as itself, so a long pass takes at most a third of the
//! database's time;
//! windows walk the table in id order from where the last one stopped, so a
//! pass reads each row once.
//! Final rows are not touched: they outlive the raw records they came from.

use diesel::prelude::*;
use diesel::sql_types::{BigInt, Int4};

/// Rows one batch deletes at most.
pub const PRUNE_BATCH_ROWS: i64 = 1000;

/// The longest pause between two batches that deleted something; each
/// pause is twice as long as the batch before it, up to this.
const MAX_PAUSE: std::time::Duration = std::time::Duration::from_millis(100);

/// The advisory lock a pass holds, so that one process prunes at a time
/// across a deployment ("etlprune").
pub const PRUNE_LOCK_KEY: i64 = 0x6574_6c70_7275_6e65;

/// How long finished rows are kept, in days; `None` keeps them for ever.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetentionPolicy {
    /// `completed` and `skipped` raw records, by `processed_at` (else
    /// `created_at`).
    pub raw_days: Option<u32>,
    /// `completed` and `cancelled` jobs, by `completed_at` (else
    /// `scheduled_at`).
    pub job_days: Option<u32>,
}

impl Default for RetentionPolicy {
    fn default() -> Self {
        Self {
            raw_days: Some(30),
            job_days: Some(14),
        }
    }
}

impl RetentionPolicy {
    /// From the settings' day counts, where 0 turns a rule off.
    pub fn from_days(raw_days: u32, job_days: u32) -> Self {
        Self {
            raw_days: (raw_days > 0).then_some(raw_days),
            job_days: (job_days > 0).then_some(job_days),
        }
    }
}

/// What a pass deleted (or, dry, would delete).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Pruned {
    pub raw_records: u64,
    pub jobs: u64,
}

/// The two kinds of rows retention deletes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PrunedKind {
    RawRecords,
    Jobs,
}

impl PrunedKind {
    pub fn as_str(self) -> &'static str {
        match self {
            PrunedKind::RawRecords => "raw_records",
            PrunedKind::Jobs => "jobs",
        }
    }

    /// `(table, finished statuses, age expression)`.
    fn rule(self) -> (&'static str, &'static str, &'static str) {
        match self {
            PrunedKind::RawRecords => (
                "raw_extraction_data",
                "processing_status IN ('completed', 'skipped')",
                "COALESCE(processed_at, created_at)",
            ),
            PrunedKind::Jobs => (
                "etl_job_queue",
                "status IN ('completed', 'cancelled')",
                "COALESCE(completed_at, scheduled_at)",
            ),
        }
    }
}

#[derive(QueryableByName)]
struct Figure {
    #[diesel(sql_type = BigInt)]
    n: i64,
}

/// How many rows of `kind` a pass would delete now.
pub fn count_prunable(conn: &mut PgConnection, kind: PrunedKind, days: u32) -> QueryResult<u64> {
    let (table, finished, age) = kind.rule();
    // Times are the database's: sessions run in UTC, as the rows were
    // stamped.
    let figure: Figure = diesel::sql_query(format!(
        "SELECT count(*) AS n FROM {table}
          WHERE {finished} AND {age} < LOCALTIMESTAMP - make_interval(days => $1)"
    ))
    .bind::<Int4, _>(days_param(days))
    .get_result(conn)?;
    Ok(u64::try_from(figure.n).unwrap_or(0))
}

/// Deletes the prunable rows of `kind` among the `limit` ids that follow
/// `after_id` (a window of ids starting at the next row, so at most `limit`
/// rows), skipping rows other sessions hold; returns how many went and the
/// last id of the window (`None` when no row was left after `after_id`).
///
/// The window is a range of the primary key, which PostgreSQL scans the
/// same way however stale its statistics are (right after a bulk load, a
/// query for "the next 1000 finished rows" may be planned as a scan of
/// every finished row and a sort).
pub fn prune_batch(
    conn: &mut PgConnection,
    kind: PrunedKind,
    days: u32,
    after_id: i32,
    limit: i64,
) -> QueryResult<(usize, Option<i32>)> {
    #[derive(QueryableByName)]
    struct Next {
        #[diesel(sql_type = diesel::sql_types::Nullable<Int4>)]
        id: Option<i32>,
    }
    let (table, finished, age) = kind.rule();
    let next: Next = diesel::sql_query(format!("SELECT min(id) AS id FROM {table} WHERE id > $1"))
        .bind::<Int4, _>(after_id)
        .get_result(conn)?;
    let Some(start) = next.id else {
        return Ok((0, None));
    };
    let width = i32::try_from(limit).unwrap_or(i32::MAX).max(1);
    let end = start.saturating_add(width - 1);
    let deleted = diesel::sql_query(format!(
        "DELETE FROM {table}
          WHERE id IN (SELECT id FROM {table}
                        WHERE id BETWEEN $2 AND $3 AND {finished}
                          AND {age} < LOCALTIMESTAMP - make_interval(days => $1)
                          FOR UPDATE SKIP LOCKED)"
    ))
    .bind::<Int4, _>(days_param(days))
    .bind::<Int4, _>(start)
    .bind::<Int4, _>(end)
    .execute(conn)?;
    Ok((deleted, Some(end)))
}

fn days_param(days: u32) -> i32 {
    i32::try_from(days).unwrap_or(i32::MAX)
}

/// What one pass does: count (`dry_run`) or delete.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PassMode {
    Delete,
    DryRun,
}

/// Why a pass did not run.
#[derive(Debug, thiserror::Error)]
pub enum PassError {
    #[error("another process is pruning (it holds the retention lock)")]
    Busy,
    #[error(transparent)]
    Query(#[from] diesel::result::Error),
}

/// One retention pass over both tables on `conn`, under the deployment-wide
/// advisory lock (a dry run takes none: it changes nothing). `progress` is
/// told each batch's deletions as they commit. Statements must not run
/// inside a transaction the caller holds: each batch commits on its own.
pub fn run_pass(
    conn: &mut PgConnection,
    policy: RetentionPolicy,
    mode: PassMode,
    mut progress: impl FnMut(PrunedKind, usize),
) -> Result<Pruned, PassError> {
    let rules = [
        (PrunedKind::RawRecords, policy.raw_days),
        (PrunedKind::Jobs, policy.job_days),
    ];
    let mut pruned = Pruned::default();
    if mode == PassMode::DryRun {
        for (kind, days) in rules {
            if let Some(days) = days {
                let n = count_prunable(conn, kind, days)?;
                *slot(&mut pruned, kind) = n;
            }
        }
        return Ok(pruned);
    }
    if !try_lock(conn)? {
        return Err(PassError::Busy);
    }
    let outcome = (|| {
        for (kind, days) in rules {
            let Some(days) = days else { continue };
            let mut after = 0;
            loop {
                let started = std::time::Instant::now();
                let (deleted, last) = prune_batch(conn, kind, days, after, PRUNE_BATCH_ROWS)?;
                *slot(&mut pruned, kind) += deleted as u64;
                if deleted > 0 {
                    progress(kind, deleted);
                    // A third of the time at most: ingest keeps the rest of
                    // the database's attention while a long pass runs.
                    std::thread::sleep((started.elapsed() * 2).min(MAX_PAUSE));
                }
                match last {
                    Some(last) => after = last,
                    None => break,
                }
            }
        }
        Ok::<_, PassError>(pruned)
    })();
    unlock(conn)?;
    outcome
}

fn slot(pruned: &mut Pruned, kind: PrunedKind) -> &mut u64 {
    match kind {
        PrunedKind::RawRecords => &mut pruned.raw_records,
        PrunedKind::Jobs => &mut pruned.jobs,
    }
}

fn try_lock(conn: &mut PgConnection) -> QueryResult<bool> {
    #[derive(QueryableByName)]
    struct Locked {
        #[diesel(sql_type = diesel::sql_types::Bool)]
        locked: bool,
    }
    let locked: Locked = diesel::sql_query("SELECT pg_try_advisory_lock($1) AS locked")
        .bind::<BigInt, _>(PRUNE_LOCK_KEY)
        .get_result(conn)?;
    Ok(locked.locked)
}

fn unlock(conn: &mut PgConnection) -> QueryResult<()> {
    diesel::sql_query("SELECT pg_advisory_unlock($1)")
        .bind::<BigInt, _>(PRUNE_LOCK_KEY)
        .execute(conn)
        .map(|_| ())
}
