//! Workers: claim a job, run its handler, commit its effects together with
//! its `completed` status, and only then ack its message.

use std::sync::Arc;
use std::time::Duration;

use etl_domain::{JobErrorCode, JobType};
pub use etl_handlers::{Handlers, JobFailure, JobHandler};
use etl_queue::{AmqpConfig, Delivery};
use etl_store::jobs::fairness::CapClaim;
use etl_store::jobs::{self, AttemptBy, AttemptOutcome, Job};
use etl_store::{Connection as _, PgPool, SimpleConnection as _};
use tokio::sync::{watch, Notify, Semaphore};
use tracing::Instrument as _;

use crate::db::db;
use crate::{Backoff, JobsError};

/// Longest a worker holds a message whose tenant runs its cap, waiting
/// for one of its jobs to end, before the job goes back to the outbox.
pub const HOLD_AT_CAP: Duration = Duration::from_secs(2);

/// How often a held message's claim is tried again when no job of this
/// process ended (another process's may have).
const HOLD_LOOK_EVERY: Duration = Duration::from_millis(250);

#[derive(Debug, Clone)]
pub struct WorkerConfig {
    /// Who this worker is, in `etl_job_queue.worker` (unique per process).
    pub name: String,
    /// Jobs run at once (`ETL_WORKER_CONCURRENCY`); also the AMQP prefetch.
    pub concurrency: usize,
    /// How often a running job's heartbeat is refreshed.
    pub heartbeat: Duration,
    /// First retry delay; doubles per attempt, with jitter.
    pub retry_base: Duration,
    /// Longest retry delay.
    pub retry_max: Duration,
    /// PostgreSQL mode: longest wait between looks for due jobs.
    pub poll: Duration,
    /// `ETL_TENANT_MAX_IN_FLIGHT`: most transform and load jobs of one
    /// tenant running at once across the deployment; `None`: half the live
    /// worker slots (SPEC §12).
    pub tenant_max_in_flight: Option<i32>,
}

impl WorkerConfig {
    pub fn new(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            concurrency: 8,
            heartbeat: Duration::from_secs(5),
            retry_base: Duration::from_secs(2),
            retry_max: Duration::from_secs(300),
            poll: Duration::from_millis(250),
            tenant_max_in_flight: None,
        }
    }
}

/// How a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Execution {
    Completed,
    /// Failed; another attempt is scheduled.
    Retrying,
    /// Failed for good.
    Failed,
    /// The job stopped being ours (rescued meanwhile); nothing committed.
    Lost,
    /// The process is shutting down and the grace ran out: the job's
    /// transaction was cancelled and the job is `queued` again, its attempt
    /// not counted; its message goes back to the broker.
    HandedBack,
}

pub struct Worker {
    pool: PgPool,
    handlers: Handlers,
    config: WorkerConfig,
    /// Poked after each completed job: a job may have written new jobs (a
    /// transform writes its load job), which the relay in this process then
    /// publishes at once instead of at its next poll.
    jobs_created: Option<Arc<Notify>>,
    /// Turns true when a shutdown's grace has run out: running jobs are
    /// cancelled and handed back.
    abandon: watch::Receiver<bool>,
    /// The backend of each running job's transaction, to cancel it.
    backends: std::sync::Mutex<std::collections::HashMap<i32, i32>>,
    /// Told each time a job of this worker ends: a held message whose
    /// tenant was at its cap may be claimed now.
    slot_freed: Notify,
    /// Each run's duration and outcome, by job type (`/metrics`).
    metrics: Option<crate::QueueMetrics>,
}

enum RunError {
    Failure(JobFailure),
    Lost,
    Database(etl_store::QueryError),
}

impl Execution {
    /// The outcome's label in logs and `/metrics`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Completed => "completed",
            Self::Retrying => "retrying",
            Self::Failed => "failed",
            Self::Lost => "lost",
            Self::HandedBack => "handed_back",
        }
    }
}

impl From<etl_store::QueryError> for RunError {
    fn from(error: etl_store::QueryError) -> Self {
        Self::Database(error)
    }
}

impl Worker {
    pub fn new(pool: PgPool, handlers: Handlers, config: WorkerConfig) -> Arc<Self> {
        Self::build(pool, handlers, config, None, watch::channel(false).1, None)
    }

    /// Like [`Worker::new`], poking `jobs_created` after each completed job,
    /// handing its running jobs back when `abandon` turns true (a
    /// shutdown's grace ran out), and timing each run into `metrics`.
    pub fn for_runtime(
        pool: PgPool,
        handlers: Handlers,
        config: WorkerConfig,
        jobs_created: Arc<Notify>,
        abandon: watch::Receiver<bool>,
        metrics: crate::QueueMetrics,
    ) -> Arc<Self> {
        Self::build(
            pool,
            handlers,
            config,
            Some(jobs_created),
            abandon,
            Some(metrics),
        )
    }

    fn build(
        pool: PgPool,
        handlers: Handlers,
        config: WorkerConfig,
        jobs_created: Option<Arc<Notify>>,
        abandon: watch::Receiver<bool>,
        metrics: Option<crate::QueueMetrics>,
    ) -> Arc<Self> {
        Arc::new(Self {
            pool,
            handlers,
            config,
            jobs_created,
            abandon,
            backends: Default::default(),
            slot_freed: Notify::new(),
            metrics,
        })
    }

    fn abandoned(&self) -> bool {
        *self.abandon.borrow()
    }

    /// Waits for the grace to run out, then cancels the statement of every
    /// running job (a job blocked on a lock would otherwise hold its
    /// transaction, and the process, for up to its lock timeout).
    async fn cancel_when_abandoned(self: Arc<Self>) {
        let mut abandon = self.abandon.clone();
        if abandon.wait_for(|abandon| *abandon).await.is_err() {
            return;
        }
        let pids: Vec<i32> = self
            .backends
            .lock()
            .map(|b| b.values().copied().collect())
            .unwrap_or_default();
        if pids.is_empty() {
            return;
        }
        tracing::warn!(
            jobs = pids.len(),
            "shutdown grace ran out; handing running jobs back"
        );
        let cancelled = db(&self.pool, move |conn| {
            Ok(jobs::cancel_backends(conn, &pids)?)
        })
        .await;
        if let Err(error) = cancelled {
            tracing::warn!(%error, "could not cancel running jobs");
        }
    }

    pub fn job_types(&self) -> Vec<JobType> {
        self.handlers.job_types()
    }

    fn retry_delay(&self, attempt: i32) -> chrono::Duration {
        let backoff = Backoff::new(self.config.retry_base, self.config.retry_max);
        let delay = backoff.delay(u32::try_from(attempt).unwrap_or(1));
        chrono::Duration::from_std(delay).unwrap_or(chrono::Duration::seconds(1))
    }

    /// Runs a claimed job to its end, with a heartbeat while it runs, in a
    /// span carrying the job's id, tenant, type and the id of the request
    /// that created it (SPEC §12): every log line of the run carries them.
    pub async fn execute(self: &Arc<Self>, job: Job) -> Execution {
        let span = tracing::info_span!(
            "job",
            job_id = job.id,
            tenant_id = job.tenant_id,
            job_type = %job.job_type,
            request_id = job.request_id.as_deref().unwrap_or(""),
        );
        let job_type = job.job_type.clone();
        let started = std::time::Instant::now();
        let execution = self.execute_in_span(job).instrument(span.clone()).await;
        let elapsed = started.elapsed();
        span.in_scope(|| {
            tracing::info!(
                outcome = execution.as_str(),
                elapsed_ms = elapsed.as_secs_f64() * 1000.0,
                "job finished"
            );
        });
        if let Some(metrics) = &self.metrics {
            metrics.observe_job(&job_type, execution.as_str(), elapsed);
        }
        // One held message takes the slot; waking them all would have them
        // race for it.
        self.slot_freed.notify_one();
        execution
    }

    async fn execute_in_span(self: &Arc<Self>, job: Job) -> Execution {
        let id = job.id;
        let (stop_beat, beat) = self.heartbeat(id);
        let outcome = self.run_in_transaction(job).await;
        let _ = stop_beat.send(true);
        let _ = beat.await;
        let failure = match outcome {
            Ok(Ok(())) => {
                if let Some(notify) = &self.jobs_created {
                    notify.notify_one();
                }
                return Execution::Completed;
            }
            Ok(Err(RunError::Lost)) => return Execution::Lost,
            Ok(Err(_)) | Err(_) if self.abandoned() => return self.hand_back(id).await,
            Ok(Err(RunError::Failure(failure))) => failure,
            Ok(Err(RunError::Database(error))) => JobFailure::database(error),
            // The handler panicked or the pool failed: retry, the cause may pass.
            Err(error) => JobFailure::retryable(
                JobErrorCode::WorkerError,
                "The worker failed while this job ran; it is retried.",
            )
            .caused_by(error),
        };
        tracing::warn!(job_id = id, code = %failure.code, message = %failure.message, cause = failure.cause.as_deref().unwrap_or(""), "job attempt failed");
        let worker = self.config.name.clone();
        let this = self.clone();
        let recorded = db(&self.pool, move |conn| {
            Ok(conn.transaction(|conn| {
                jobs::fail_attempt(
                    conn,
                    etl_domain::JobId::new(id),
                    AttemptBy::Worker(&worker),
                    &failure.details(),
                    failure.retryable,
                    |n| this.retry_delay(n),
                )
            })?)
        })
        .await;
        match recorded {
            Ok(AttemptOutcome::RetryAt(_)) => Execution::Retrying,
            Ok(AttemptOutcome::Failed) => Execution::Failed,
            Ok(AttemptOutcome::NotOwned) => Execution::Lost,
            Err(error) => {
                // The row still says running: the rescuer will retry it once
                // its heartbeat is stale.
                tracing::error!(job_id = id, %error, "could not record a failed attempt");
                Execution::Lost
            }
        }
    }

    /// Gives a job whose run was cancelled by a shutdown back: `queued`
    /// again, its attempt not counted.
    async fn hand_back(&self, id: i32) -> Execution {
        let worker = self.config.name.clone();
        let handed = db(&self.pool, move |conn| {
            Ok(jobs::hand_back(conn, etl_domain::JobId::new(id), &worker)?)
        })
        .await;
        match handed {
            Ok(true) => {
                tracing::info!(
                    job_id = id,
                    "handed back at shutdown; it runs again after restart"
                );
                Execution::HandedBack
            }
            Ok(false) => Execution::Lost,
            Err(error) => {
                // The row says running: the rescuer retries it once its
                // heartbeat is stale (an attempt, but nothing is lost).
                tracing::warn!(job_id = id, %error, "could not hand a job back");
                Execution::Lost
            }
        }
    }

    async fn run_in_transaction(
        self: &Arc<Self>,
        job: Job,
    ) -> Result<Result<(), RunError>, JobsError> {
        let handler = job.job_type().and_then(|t| self.handlers.get(t));
        let worker = self.config.name.clone();
        let this = self.clone();
        db(&self.pool, move |conn| {
            let job_id = job.id;
            this.register_backend(conn, job_id);
            let outcome = this.run_job(conn, job, handler, &worker);
            if let Ok(mut backends) = this.backends.lock() {
                backends.remove(&job_id);
            }
            outcome
        })
        .await
    }

    /// Notes the backend running a job's transaction, so that a shutdown
    /// whose grace ran out can cancel it.
    fn register_backend(&self, conn: &mut etl_store::PgConnection, job_id: i32) {
        match jobs::backend_pid(conn) {
            Ok(pid) => {
                if let Ok(mut backends) = self.backends.lock() {
                    backends.insert(job_id, pid);
                }
            }
            Err(error) => tracing::warn!(job_id, %error, "could not read the job's backend"),
        }
    }

    fn run_job(
        &self,
        conn: &mut etl_store::PgConnection,
        job: Job,
        handler: Option<Arc<dyn JobHandler>>,
        worker: &str,
    ) -> Result<Result<(), RunError>, JobsError> {
        let Some(handler) = handler else {
            return Ok(Err(RunError::Failure(JobFailure::permanent(
                JobErrorCode::NoHandler,
                format!("this worker runs no {} jobs", job.job_type),
            ))));
        };
        Ok(conn.transaction(|conn| {
            // A job may run longer than an HTTP request, but not forever.
            conn.batch_execute(etl_store::JOB_SESSION_LIMITS)?;
            let result = handler.run(conn, &job).map_err(RunError::Failure)?;
            if jobs::complete(conn, job.job_id(), worker, &result)? {
                Ok(())
            } else {
                Err(RunError::Lost)
            }
        }))
    }

    fn heartbeat(self: &Arc<Self>, id: i32) -> (watch::Sender<bool>, tokio::task::JoinHandle<()>) {
        let (stop, mut stopped) = watch::channel(false);
        let this = self.clone();
        let task = tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = tokio::time::sleep(this.config.heartbeat) => {}
                    _ = stopped.changed() => return,
                }
                let worker = this.config.name.clone();
                if let Err(error) = db(&this.pool, move |conn| {
                    Ok(jobs::heartbeat(conn, etl_domain::JobId::new(id), &worker)?)
                })
                .await
                {
                    tracing::warn!(job_id = id, %error, "heartbeat failed");
                }
            }
        });
        (stop, task)
    }

    /// Claims the job of a delivery. While its tenant runs its cap, the
    /// message is held, ready: claimed the moment a slot frees (a job of
    /// this process ends, or another's is seen ended at the next look),
    /// for at most [`HOLD_AT_CAP`]; then the job goes back to the outbox
    /// ([`CapClaim::TenantBusy`]), and this slot is free for other tenants'
    /// messages.
    async fn claim_when_room(self: &Arc<Self>, job_id: i32) -> Result<CapClaim, JobsError> {
        let until = std::time::Instant::now() + HOLD_AT_CAP;
        loop {
            let give_back = std::time::Instant::now() >= until;
            let freed = self.slot_freed.notified();
            let (worker, cap) = (self.config.name.clone(), self.config.tenant_max_in_flight);
            let claim = db(&self.pool, move |conn| {
                let id = etl_domain::JobId::new(job_id);
                Ok(jobs::fairness::claim_within_cap(
                    conn, id, &worker, cap, give_back,
                )?)
            })
            .await?;
            match claim {
                CapClaim::TenantBusy if !give_back => {
                    tokio::select! {
                        _ = freed => {}
                        _ = tokio::time::sleep(HOLD_LOOK_EVERY) => {}
                    }
                }
                settled => return Ok(settled),
            }
        }
    }

    /// Handles one delivery: claim, run, then ack, dead-letter or requeue.
    async fn handle(self: &Arc<Self>, delivery: Delivery) {
        let Some(job_id) = delivery.job_id() else {
            tracing::warn!("a message without a job id; dead-lettering it");
            let _ = delivery.dead_letter().await;
            return;
        };
        let claimed = self.claim_when_room(job_id).await;
        let settled = match claimed {
            // Back in the outbox: the relay publishes it again once its
            // tenant has room. This message has done its part.
            Ok(CapClaim::TenantBusy) => {
                tracing::debug!(job_id, "the job's tenant is at its cap; back to the outbox");
                delivery.ack().await
            }
            Ok(CapClaim::Claimed(job)) => match self.execute(*job).await {
                Execution::Failed => delivery.dead_letter().await,
                // Back to the broker for whoever runs next.
                Execution::HandedBack => delivery.requeue().await,
                Execution::Completed | Execution::Retrying | Execution::Lost => {
                    delivery.ack().await
                }
            },
            Ok(CapClaim::NotClaimable) => {
                // Finished, cancelled or running elsewhere: this message
                // changes nothing. A failed job's redelivery goes on to the
                // dead-letter queue, where failed jobs' messages belong.
                let status = db(&self.pool, move |conn| {
                    Ok(jobs::find(conn, etl_domain::JobId::new(job_id))?)
                })
                .await
                .map(|job| job.map(|job| job.status()));
                match status {
                    // A job this database does not hold: another deployment
                    // shares the vhost, say. Acking would lose that job for
                    // its owner; the dead-letter queue keeps the message.
                    Ok(None) => {
                        tracing::warn!(job_id, "a message names a job this database does not hold (another deployment on this vhost?); dead-lettering it");
                        delivery.dead_letter().await
                    }
                    Ok(Some(etl_domain::JobStatus::Failed)) if delivery.redelivered() => {
                        delivery.dead_letter().await
                    }
                    _ => delivery.ack().await,
                }
            }
            Err(error) => {
                tracing::warn!(job_id, %error, "cannot claim the job; giving the message back");
                tokio::time::sleep(Duration::from_secs(1)).await;
                delivery.requeue().await
            }
        };
        if let Err(error) = settled {
            tracing::warn!(job_id, %error, "could not settle the message");
        }
    }

    /// AMQP mode: consumes the queues of the handled job types until
    /// `shutdown`, reconnecting with backoff when the broker goes away.
    pub async fn run_amqp(
        self: Arc<Self>,
        mut amqp: AmqpConfig,
        mut shutdown: watch::Receiver<bool>,
    ) {
        amqp.prefetch = u16::try_from(self.config.concurrency)
            .unwrap_or(u16::MAX)
            .max(1);
        amqp.connection_name = format!("{} worker", self.config.name);
        tokio::spawn(self.clone().cancel_when_abandoned());
        let slots = Arc::new(Semaphore::new(self.config.concurrency.max(1)));
        let mut reconnect = Backoff::new(Duration::from_millis(200), Duration::from_secs(30));
        while !*shutdown.borrow() {
            let broker = match amqp.connect().await {
                Ok(broker) => broker,
                Err(error) => {
                    let wait = reconnect.next_delay();
                    tracing::warn!(%error, retry_in_ms = wait.as_millis() as u64, "worker cannot reach RabbitMQ");
                    tokio::select! {
                        _ = tokio::time::sleep(wait) => {}
                        _ = shutdown.changed() => {}
                    }
                    continue;
                }
            };
            let connected_at = tokio::time::Instant::now();
            let mut consumers = tokio::task::JoinSet::new();
            for job_type in self.job_types() {
                let tag = format!("{}-{}", self.config.name, job_type);
                match broker.consume(job_type, &tag).await {
                    Ok(mut consumer) => {
                        let this = self.clone();
                        let slots = slots.clone();
                        consumers.spawn(async move {
                            while let Some(next) = consumer.next().await {
                                let Ok(delivery) = next else { break };
                                let Ok(slot) = slots.clone().acquire_owned().await else {
                                    break;
                                };
                                let this = this.clone();
                                tokio::spawn(async move {
                                    this.handle(delivery).await;
                                    drop(slot);
                                });
                            }
                        });
                    }
                    Err(error) => tracing::warn!(%error, %job_type, "cannot consume"),
                }
            }
            tokio::select! {
                _ = consumers.join_next() => {
                    tracing::warn!("a consumer stopped; reconnecting");
                }
                _ = shutdown.changed() => {}
            }
            consumers.abort_all();
            // Let running jobs finish (their acks travel on this connection)
            // before closing it: taking every slot waits for them.
            let all = u32::try_from(self.config.concurrency.max(1)).unwrap_or(u32::MAX);
            drop(slots.acquire_many(all).await);
            broker.close().await;
            // A connection that held for a while starts the backoff over; one
            // that the broker drops at once is retried later and later.
            if connected_at.elapsed() > Duration::from_secs(30) {
                reconnect.reset();
            }
            if !*shutdown.borrow() {
                let wait = reconnect.next_delay();
                tokio::select! {
                    _ = tokio::time::sleep(wait) => {}
                    _ = shutdown.changed() => {}
                }
            }
        }
    }

    /// PostgreSQL mode: claims due jobs from the table (`FOR UPDATE SKIP
    /// LOCKED`) until `shutdown`, woken early by `wake`.
    pub async fn run_postgres(self: Arc<Self>, wake: Arc<Notify>, shutdown: watch::Receiver<bool>) {
        tokio::spawn(self.clone().cancel_when_abandoned());
        let mut loops = tokio::task::JoinSet::new();
        for _ in 0..self.config.concurrency.max(1) {
            let this = self.clone();
            let wake = wake.clone();
            let mut shutdown = shutdown.clone();
            loops.spawn(async move {
                let types = this.job_types();
                while !*shutdown.borrow() {
                    let (worker, cap) =
                        (this.config.name.clone(), this.config.tenant_max_in_flight);
                    let types = types.clone();
                    match db(&this.pool, move |conn| {
                        Ok(jobs::fairness::claim_next_fair(conn, &types, &worker, cap)?)
                    })
                    .await
                    {
                        Ok(Some(job)) => {
                            this.execute(job).await;
                        }
                        Ok(None) => {
                            tokio::select! {
                                _ = wake.notified() => {}
                                _ = tokio::time::sleep(this.config.poll) => {}
                                _ = shutdown.changed() => {}
                            }
                        }
                        Err(error) => {
                            tracing::warn!(%error, "cannot claim jobs");
                            tokio::select! {
                                _ = tokio::time::sleep(this.config.poll * 4) => {}
                                _ = shutdown.changed() => {}
                            }
                        }
                    }
                }
            });
        }
        while loops.join_next().await.is_some() {}
    }
}
