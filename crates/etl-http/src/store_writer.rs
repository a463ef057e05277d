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
//! free, so a lone request waits for nobody. Tenants are served
//! round-robin (SPEC §12): a batch takes one record of each tenant with
//! records waiting, then a second of each, and so on, so one tenant's
//! stream of stores delays another's single store by a batch or two, not by
//! everything it has queued. The writers are plain threads
//! that own their database work; they are the one place besides
//! [`crate::blocking`] where synchronous Diesel runs.

use std::collections::{BTreeMap, VecDeque};
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use etl_store::raw_records::{self, NewRawRecord};
use etl_store::{Fault, PgConnection, PgPool};
use tokio::sync::{mpsc, oneshot};

use crate::error::ApiError;

/// A queued record and where its outcome goes.
struct Pending {
    record: NewRawRecord,
    reply: oneshot::Sender<Result<Option<i32>, ApiError>>,
}

impl Pending {
    fn bytes(&self) -> usize {
        let record = &self.record;
        record.raw_data.as_str().len()
            + record
                .extraction_metadata
                .as_ref()
                .map_or(0, |m| m.as_str().len())
            + record.ingest_changes.as_str().len()
    }
}

/// Records waiting for a writer, by tenant, each tenant's in arrival order.
#[derive(Debug)]
struct Waiting<T> {
    by_tenant: BTreeMap<i32, VecDeque<T>>,
    len: usize,
    /// The tenant a batch starts with: the one after the last served.
    next: i32,
}

impl<T> Default for Waiting<T> {
    fn default() -> Self {
        Self {
            by_tenant: BTreeMap::new(),
            len: 0,
            next: i32::MIN,
        }
    }
}

impl<T> Waiting<T> {
    fn push(&mut self, tenant: i32, item: T) {
        self.by_tenant.entry(tenant).or_default().push_back(item);
        self.len += 1;
    }

    fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Up to `max_count` items and `max_bytes` (at least one item), taken
    /// round-robin over the tenants from `next` on; `keep` drops an item
    /// (its request gave up) when false. An item that would pass the bytes
    /// stays first in its tenant's line and ends the batch.
    fn take(
        &mut self,
        max_count: usize,
        max_bytes: usize,
        bytes: impl Fn(&T) -> usize,
        keep: impl Fn(&T) -> bool,
    ) -> Vec<T> {
        let mut batch = Vec::new();
        let mut total = 0;
        'rounds: while batch.len() < max_count && self.len > 0 {
            let tenants: Vec<i32> = self
                .by_tenant
                .range(self.next..)
                .chain(self.by_tenant.range(..self.next))
                .map(|(tenant, _)| *tenant)
                .collect();
            for tenant in tenants {
                if batch.len() >= max_count {
                    break 'rounds;
                }
                let Some(line) = self.by_tenant.get_mut(&tenant) else {
                    continue;
                };
                let Some(item) = line.pop_front() else {
                    continue;
                };
                self.len -= 1;
                if keep(&item) {
                    let size = bytes(&item);
                    if !batch.is_empty() && total + size > max_bytes {
                        line.push_front(item);
                        self.len += 1;
                        break 'rounds;
                    }
                    total += size;
                    batch.push(item);
                }
                if line.is_empty() {
                    self.by_tenant.remove(&tenant);
                }
                self.next = tenant.saturating_add(1);
            }
        }
        batch
    }

    fn drain(&mut self) -> impl Iterator<Item = T> + '_ {
        self.len = 0;
        std::mem::take(&mut self.by_tenant).into_values().flatten()
    }
}

/// The writers' shared intake: the queue requests send to, and what has
/// been taken off it to be served round-robin.
struct Intake {
    queue: mpsc::Receiver<Pending>,
    waiting: Waiting<Pending>,
}

/// What `/ready` reads of the writers, kept by the writers themselves (a
/// probe queued behind every waiting record would answer late exactly when
/// the service is busiest).
#[derive(Debug)]
struct Health {
    /// Writer threads inside their loop.
    running: AtomicUsize,
    /// Whether the last group reached PostgreSQL.
    reached: AtomicBool,
    /// Per writer: milliseconds since `epoch` at which its current group
    /// began, 0 while it waits for work.
    busy_since_ms: Vec<AtomicU64>,
    /// When a group last ended (ms since `epoch`).
    last_group_ms: AtomicU64,
    epoch: Instant,
}

impl Health {
    fn new(writers: usize) -> Self {
        Self {
            running: AtomicUsize::new(0),
            reached: AtomicBool::new(true),
            busy_since_ms: (0..writers).map(|_| AtomicU64::new(0)).collect(),
            last_group_ms: AtomicU64::new(0),
            epoch: Instant::now(),
        }
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis())
            .unwrap_or(u64::MAX)
            .max(1)
    }

    fn busy(&self, writer: usize, busy: bool) {
        if let Some(slot) = self.busy_since_ms.get(writer) {
            slot.store(if busy { self.now_ms() } else { 0 }, Ordering::Relaxed);
        }
    }

    fn group_ended(&self, writer: usize, reached: bool) {
        self.reached.store(reached, Ordering::Relaxed);
        self.last_group_ms.store(self.now_ms(), Ordering::Relaxed);
        self.busy(writer, false);
    }

    /// Up when a writer runs, the last group reached PostgreSQL, and some
    /// writer is free or has been busy for less than `stalled_after`.
    fn is_up(&self, stalled_after: Duration) -> bool {
        let bound = u64::try_from(stalled_after.as_millis()).unwrap_or(u64::MAX);
        let now = self.now_ms();
        self.running.load(Ordering::Relaxed) > 0
            && self.reached.load(Ordering::Relaxed)
            && self.busy_since_ms.iter().any(|slot| {
                let since = slot.load(Ordering::Relaxed);
                since == 0 || now.saturating_sub(since) < bound
            })
    }
}

/// Handle to the writer threads. Cloning shares them; they stop once every
/// handle is dropped and the queue is drained.
#[derive(Clone)]
pub struct StoreWriter {
    queue: mpsc::Sender<Pending>,
    health: Arc<Health>,
    /// Longest a request waits for its answer (a bound should the threads
    /// ever stall; an outage is answered sooner, see `write_batches`).
    answer_timeout: Duration,
}

/// How the writer batches.
#[derive(Debug, Clone, Copy)]
pub struct StoreWriterConfig {
    /// Writer threads, each with at most one batch in flight.
    pub writers: usize,
    /// Most records per statement.
    pub max_batch: usize,
    /// Most JSON bytes per statement (at least one record): PostgreSQL takes
    /// at most 1 GB of parameters, and each group is held in memory twice.
    pub max_batch_bytes: usize,
    /// Most records waiting; further requests wait for room.
    pub queue_capacity: usize,
    /// Longest a request waits for its answer.
    pub answer_timeout: Duration,
}

impl Default for StoreWriterConfig {
    fn default() -> Self {
        Self {
            writers: 2,
            max_batch: 256,
            max_batch_bytes: 16 * 1024 * 1024,
            queue_capacity: 4096,
            answer_timeout: Duration::from_secs(40),
        }
    }
}

impl StoreWriter {
    pub fn start(pool: PgPool, config: StoreWriterConfig) -> Self {
        let (queue, receiver) = mpsc::channel(config.queue_capacity.max(1));
        let receiver = Arc::new(Mutex::new(Intake {
            queue: receiver,
            waiting: Waiting::default(),
        }));
        let writers = config.writers.max(1);
        let health = Arc::new(Health::new(writers));
        for n in 0..writers {
            let pool = pool.clone();
            let receiver = receiver.clone();
            let health = health.clone();
            let spawned = std::thread::Builder::new()
                .name(format!("etl-store-writer-{n}"))
                .spawn(move || supervise(n, &pool, &receiver, &health, config));
            if let Err(error) = spawned {
                tracing::error!(%error, "could not start a store writer thread");
            }
        }
        // While the writers have no work, their state would grow stale: this
        // thread asks PostgreSQL, through the writers' pool, about once a
        // second. It ends when the queue's last sender is gone.
        let watched = queue.downgrade();
        let watcher = {
            let health = health.clone();
            std::thread::Builder::new()
                .name("etl-store-writer-health".to_owned())
                .spawn(move || watch_while_idle(&pool, &health, &watched))
        };
        if let Err(error) = watcher {
            tracing::error!(%error, "could not start the store writer's health thread");
        }
        Self {
            queue,
            health,
            answer_timeout: config.answer_timeout,
        }
    }

    /// Stores one record, answering once it is committed: its id, or `None`
    /// when the tenant or integration checks refused it.
    pub async fn store(&self, record: NewRawRecord) -> Result<Option<i32>, ApiError> {
        let (reply, outcome) = oneshot::channel();
        let answered = tokio::time::timeout(self.answer_timeout, async {
            self.queue
                .send(Pending { record, reply })
                .await
                .map_err(|_| ApiError::unavailable("the store writer has stopped"))?;
            outcome
                .await
                .map_err(|_| ApiError::internal("the store writer dropped a record"))?
        })
        .await;
        // On a timeout the reply is dropped: a writer that has not taken the
        // record yet skips it (see `take_batch`).
        answered.unwrap_or_else(|_| {
            Err(ApiError::unavailable(
                "the store writer did not answer in time",
            ))
        })
    }

    /// Whether the writers take work and their last group reached
    /// PostgreSQL (for `/ready`): read from what they keep, at once.
    pub fn is_up(&self) -> bool {
        self.health.is_up(self.answer_timeout)
    }
}

/// Runs a writer thread's loop, starting it again should it panic: a bug
/// in one group costs that group's answers (500), never the writer.
fn supervise(
    writer: usize,
    pool: &PgPool,
    receiver: &Mutex<Intake>,
    health: &Health,
    config: StoreWriterConfig,
) {
    health.running.fetch_add(1, Ordering::Relaxed);
    loop {
        let ran = std::panic::catch_unwind(AssertUnwindSafe(|| {
            write_batches(writer, pool, receiver, health, config);
        }));
        health.busy(writer, false);
        match ran {
            // The queue closed: the server is shutting down.
            Ok(()) => break,
            Err(_) => {
                tracing::error!("a store writer thread panicked; starting it again");
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    }
    health.running.fetch_sub(1, Ordering::Relaxed);
}

fn write_batches(
    writer: usize,
    pool: &PgPool,
    intake: &Mutex<Intake>,
    health: &Health,
    config: StoreWriterConfig,
) {
    loop {
        let Some(batch) = take_batch(intake, config) else {
            return;
        };
        if batch.is_empty() {
            continue;
        }
        health.busy(writer, true);
        let span = tracing::debug_span!("store_batch", records = batch.len());
        let reached = span.in_scope(|| write_group(pool, batch));
        health.group_ended(writer, reached);
        if !reached {
            // PostgreSQL cannot be reached: what waits now would wait a
            // checkout timeout each. It is answered 503 at once instead.
            fail_queued(intake);
        }
    }
}

/// How often an idle writer's reach of PostgreSQL is checked.
const IDLE_CHECK: Duration = Duration::from_secs(1);

fn watch_while_idle(pool: &PgPool, health: &Health, queue: &mpsc::WeakSender<Pending>) {
    while queue.upgrade().is_some() {
        std::thread::sleep(IDLE_CHECK);
        let idle_for = health
            .now_ms()
            .saturating_sub(health.last_group_ms.load(Ordering::Relaxed));
        let all_free = health
            .busy_since_ms
            .iter()
            .all(|slot| slot.load(Ordering::Relaxed) == 0);
        if all_free && u128::from(idle_for) >= IDLE_CHECK.as_millis() {
            health
                .reached
                .store(probe_database(pool), Ordering::Relaxed);
        }
    }
}

/// How many batches' worth of records a writer takes off the queue to
/// choose from: enough to see every tenant with records waiting behind a
/// busy one, bounded so that the queue's own bound still holds.
const LOOKAHEAD_BATCHES: usize = 4;

/// Waits for work, then takes what else is queued (up to a few batches'
/// worth) and forms a batch round-robin over the tenants, up to the
/// batch's count and bytes (see [`Waiting::take`]). Records whose request
/// gave up are dropped. `None` once the queue closed and nothing waits.
fn take_batch(intake: &Mutex<Intake>, config: StoreWriterConfig) -> Option<Vec<Pending>> {
    let mut intake = intake
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let intake = &mut *intake;
    if intake.waiting.is_empty() {
        let pending = intake.queue.blocking_recv()?;
        intake.waiting.push(pending.record.tenant_id, pending);
    }
    let max_count = config.max_batch.max(1);
    while intake.waiting.len < max_count * LOOKAHEAD_BATCHES {
        match intake.queue.try_recv() {
            Ok(pending) => intake.waiting.push(pending.record.tenant_id, pending),
            Err(_) => break,
        }
    }
    Some(intake.waiting.take(
        max_count,
        config.max_batch_bytes,
        Pending::bytes,
        |pending| !pending.reply.is_closed(),
    ))
}

/// Answers 503 to every record waiting now (PostgreSQL is unreachable).
fn fail_queued(intake: &Mutex<Intake>) {
    let unavailable = || ApiError::unavailable("database unreachable (store writer)");
    let mut intake = intake
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    for pending in intake.waiting.drain() {
        let _ = pending.reply.send(Err(unavailable()));
    }
    while let Ok(pending) = intake.queue.try_recv() {
        let _ = pending.reply.send(Err(unavailable()));
    }
}

fn probe_database(pool: &PgPool) -> bool {
    use etl_store::SimpleConnection as _;
    pool.get()
        .ok()
        .is_some_and(|mut conn| conn.batch_execute("SELECT 1").is_ok())
}

/// Answers each record of one group; `false` when PostgreSQL could not be
/// reached. Every record answered 503 is not enough to say so (a full disk
/// refuses every record of a reachable server; a trigger may refuse one
/// record with a resource error): the writer probes before it answers
/// everything queued 503.
fn write_group(pool: &PgPool, batch: Vec<Pending>) -> bool {
    let (records, replies): (Vec<_>, Vec<_>) =
        batch.into_iter().map(|p| (p.record, p.reply)).unzip();
    let outcomes = store_group(pool, &records);
    let all_unavailable = outcomes
        .iter()
        .all(|o| matches!(o, Err(e) if e.code() == crate::error::ErrorCode::ServiceUnavailable));
    for (reply, outcome) in replies.into_iter().zip(outcomes) {
        let _ = reply.send(outcome);
    }
    !all_unavailable || probe_database(pool)
}

/// Inserts one group with one statement and answers per record, in order.
/// If PostgreSQL refuses the statement for a reason that is not passing,
/// each record is tried alone, so that only the one that caused it gets an
/// error (422 when its content is at fault, see [`refused_record`]) and the
/// others are stored: no record makes another request fail.
fn store_group(pool: &PgPool, records: &[NewRawRecord]) -> Vec<Result<Option<i32>, ApiError>> {
    let everyone = |error: ApiError| vec![Err(error); records.len()];
    let mut conn = match pool.get() {
        Ok(conn) => conn,
        Err(error) => return everyone(error.into()),
    };
    match raw_records::insert_checked_many(&mut conn, records) {
        Ok(ids) => ids.into_iter().map(Ok).collect(),
        Err(error) if Fault::known(&error) == Some(Fault::Transient) => {
            everyone(ApiError::unavailable(format!("database: {error}")))
        }
        Err(error) if records.len() > 1 => {
            tracing::warn!(%error, records = records.len(), "a grouped store failed; storing its records one by one");
            records
                .iter()
                .map(|record| {
                    raw_records::insert_checked_many(&mut conn, std::slice::from_ref(record))
                        .map(|ids| ids.first().copied().flatten())
                        .map_err(|e| refused_record(&mut conn, record, &e, "raw_data"))
                })
                .collect()
        }
        Err(error) => everyone(refused_record(&mut conn, &records[0], &error, "raw_data")),
    }
}

/// The answer for a record whose insert failed with `error`, by whose
/// fault it is ([`raw_records::fault_of_insert`]): a 422 naming `field`
/// when its content is, a 503 when the database cannot take it now, else a
/// 500. Call it outside a failed transaction (or after its savepoint
/// rolled back).
pub(crate) fn refused_record(
    conn: &mut PgConnection,
    record: &NewRawRecord,
    error: &etl_store::QueryError,
    field: &str,
) -> ApiError {
    fault_answer(
        raw_records::fault_of_insert(conn, record, error),
        field,
        error,
    )
}

/// The answer for a store that failed with `error`, by whose fault it is:
/// a 422 naming `field` for the record's content, a 503 when the database
/// cannot take it now, else a 500 (the cause logged, never shown).
pub(crate) fn fault_answer(fault: Fault, field: &str, error: &impl std::fmt::Display) -> ApiError {
    match fault {
        Fault::Content => {
            tracing::warn!(%error, field, "PostgreSQL refused a record for its content");
            ApiError::invalid_field(field, "PostgreSQL refused to store this value")
        }
        Fault::Transient => ApiError::unavailable(format!("database: {error}")),
        Fault::Internal => ApiError::internal(format!("database: {error}")),
    }
}

#[cfg(test)]
mod tests {
    use super::Waiting;

    /// (tenant, label, bytes)
    fn waiting(items: &[(i32, &'static str, usize)]) -> Waiting<(&'static str, usize)> {
        let mut waiting = Waiting::default();
        for (tenant, label, bytes) in items {
            waiting.push(*tenant, (*label, *bytes));
        }
        waiting
    }

    fn take(
        waiting: &mut Waiting<(&'static str, usize)>,
        count: usize,
        bytes: usize,
    ) -> Vec<&'static str> {
        waiting
            .take(
                count,
                bytes,
                |(_, b)| *b,
                |(label, _)| !label.starts_with('x'),
            )
            .into_iter()
            .map(|(label, _)| label)
            .collect()
    }

    #[test]
    fn a_batch_takes_one_record_of_each_waiting_tenant_in_turn() {
        // Tenant 1 queued a stream before tenant 2's single store.
        let mut w = waiting(&[
            (1, "a1", 1),
            (1, "a2", 1),
            (1, "a3", 1),
            (1, "a4", 1),
            (2, "b1", 1),
            (3, "c1", 1),
            (3, "c2", 1),
        ]);
        assert_eq!(take(&mut w, 3, 100), ["a1", "b1", "c1"]);
        // The next batch goes on after the last tenant served.
        assert_eq!(take(&mut w, 3, 100), ["a2", "c2", "a3"]);
        assert_eq!(take(&mut w, 3, 100), ["a4"]);
        assert!(w.is_empty());
        assert!(take(&mut w, 3, 100).is_empty());
    }

    #[test]
    fn the_bytes_bound_a_batch_and_the_record_over_them_waits_first_in_line() {
        let mut w = waiting(&[(1, "a1", 60), (2, "b1", 50), (1, "a2", 10)]);
        assert_eq!(take(&mut w, 10, 100), ["a1"]);
        assert_eq!(take(&mut w, 10, 100), ["b1", "a2"]);
        // One record over the bound still goes, alone.
        let mut w = waiting(&[(1, "big", 500), (2, "b1", 1)]);
        assert_eq!(take(&mut w, 10, 100), ["big"]);
        assert_eq!(take(&mut w, 10, 100), ["b1"]);
    }

    #[test]
    fn records_whose_request_gave_up_are_dropped() {
        let mut w = waiting(&[(1, "x-gone", 1), (1, "a1", 1), (2, "x-gone-too", 1)]);
        assert_eq!(take(&mut w, 10, 100), ["a1"]);
        assert!(w.is_empty());
        let mut w = waiting(&[(1, "a1", 1), (2, "b1", 1)]);
        assert_eq!(w.drain().count(), 2);
        assert!(w.is_empty());
    }
}
