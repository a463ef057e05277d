//! Group commit for single-record stores.
//!
//! Each `POST /raw-data/store` would otherwise be its own transaction, and a
//! commit (a WAL flush) per record is what limits ingest. The writer instead
//! collects the records that arrive while it is busy and inserts them with
//! one statement, one commit; each request is still answered on its own,
//! only after that commit (a 2xx still means committed), and one record's
//! failed checks do not affect the others (see
//! [`etl_store::raw_records::insert_checked_many`]).
//!
//! Batches form naturally: a writer takes whatever is queued when it becomes
//! free, so a lone request waits for nobody. The writers are plain threads
//! that own their database work; they are the one place besides
//! [`crate::blocking`] where synchronous Diesel runs.

use std::sync::{Arc, Mutex};

use etl_store::raw_records::{self, NewRawRecord};
use etl_store::PgPool;
use tokio::sync::{mpsc, oneshot};

use crate::error::ApiError;

/// A queued record and where its outcome goes.
struct Pending {
    record: NewRawRecord,
    reply: oneshot::Sender<Result<Option<i32>, ApiError>>,
}

/// Handle to the writer threads. Cloning shares them; they stop once every
/// handle is dropped and the queue is drained.
#[derive(Clone)]
pub struct StoreWriter {
    queue: mpsc::Sender<Pending>,
}

/// How the writer batches.
#[derive(Debug, Clone, Copy)]
pub struct StoreWriterConfig {
    /// Writer threads, each with at most one batch in flight.
    pub writers: usize,
    /// Most records per statement.
    pub max_batch: usize,
    /// Most records waiting; further requests wait for room.
    pub queue_capacity: usize,
}

impl Default for StoreWriterConfig {
    fn default() -> Self {
        Self {
            writers: 2,
            max_batch: 256,
            queue_capacity: 4096,
        }
    }
}

impl StoreWriter {
    pub fn start(pool: PgPool, config: StoreWriterConfig) -> Self {
        let (queue, receiver) = mpsc::channel(config.queue_capacity.max(1));
        let receiver = Arc::new(Mutex::new(receiver));
        for n in 0..config.writers.max(1) {
            let pool = pool.clone();
            let receiver = receiver.clone();
            let max_batch = config.max_batch.max(1);
            let spawned = std::thread::Builder::new()
                .name(format!("etl-store-writer-{n}"))
                .spawn(move || write_batches(&pool, &receiver, max_batch));
            if let Err(error) = spawned {
                tracing::error!(%error, "could not start a store writer thread");
            }
        }
        Self { queue }
    }

    /// Stores one record, answering once it is committed: its id, or `None`
    /// when the tenant or integration checks refused it.
    pub async fn store(&self, record: NewRawRecord) -> Result<Option<i32>, ApiError> {
        let (reply, outcome) = oneshot::channel();
        self.queue
            .send(Pending { record, reply })
            .await
            .map_err(|_| ApiError::internal("store writer has stopped"))?;
        outcome
            .await
            .map_err(|_| ApiError::internal("store writer dropped a record"))?
    }
}

fn write_batches(pool: &PgPool, receiver: &Mutex<mpsc::Receiver<Pending>>, max_batch: usize) {
    loop {
        let batch = {
            let Ok(mut queue) = receiver.lock() else {
                return;
            };
            // Wait for one record, then take whatever else is already queued.
            let Some(first) = queue.blocking_recv() else {
                return;
            };
            let mut batch = vec![first];
            while batch.len() < max_batch {
                match queue.try_recv() {
                    Ok(next) => batch.push(next),
                    Err(_) => break,
                }
            }
            batch
        };
        let span = tracing::debug_span!("store_batch", records = batch.len());
        span.in_scope(|| write_group(pool, batch));
    }
}

/// Answers each record of one group.
fn write_group(pool: &PgPool, batch: Vec<Pending>) {
    let (records, replies): (Vec<_>, Vec<_>) =
        batch.into_iter().map(|p| (p.record, p.reply)).unzip();
    for (reply, outcome) in replies.into_iter().zip(store_group(pool, &records)) {
        let _ = reply.send(outcome);
    }
}

/// Inserts one group with one statement and answers per record, in order.
/// If PostgreSQL refuses the statement, each record is tried alone, so that
/// only the one that caused it gets an error (a 422) and the others are
/// stored: no record makes another request fail.
fn store_group(pool: &PgPool, records: &[NewRawRecord]) -> Vec<Result<Option<i32>, ApiError>> {
    let everyone = |error: ApiError| vec![Err(error); records.len()];
    let mut conn = match pool.get() {
        Ok(conn) => conn,
        Err(error) => return everyone(error.into()),
    };
    match raw_records::insert_checked_many(&mut conn, records) {
        Ok(ids) => ids.into_iter().map(Ok).collect(),
        Err(error) if records.len() > 1 && !etl_store::is_unavailable(&error) => {
            tracing::warn!(%error, records = records.len(), "a grouped store failed; storing its records one by one");
            records
                .iter()
                .map(|record| {
                    raw_records::insert_checked_many(&mut conn, std::slice::from_ref(record))
                        .map(|ids| ids.first().copied().flatten())
                        .map_err(|e| refused_record(e, "raw_data"))
                })
                .collect()
        }
        Err(error) => everyone(refused_record(error, "raw_data")),
    }
}

/// The answer for a record PostgreSQL refused to store: 503 when the
/// database could not be reached, else a 422 naming `field` (the record's
/// own content is the only thing that differs between a failing insert and
/// the ones that succeed).
pub(crate) fn refused_record(error: etl_store::QueryError, field: &str) -> ApiError {
    if etl_store::is_unavailable(&error) {
        return ApiError::from(error);
    }
    tracing::warn!(%error, field, "PostgreSQL refused a record");
    ApiError::invalid_field(field, "PostgreSQL refused to store this value")
}
