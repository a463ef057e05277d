//! The one composition root of a process's background half: the outbox
//! relay (amqp mode), the workers, the rescuer, the idempotency janitor,
//! the retention pruner and the metrics refresher, wired the same way for `etl-server serve`,
//! `etl-server worker` and every test harness.
//!
//! ```text
//! Runtime::builder(pool, Transport::Amqp(amqp))
//!     .handlers(etl_pipeline::handlers())
//!     .worker(worker_config)
//!     .start()
//! ```

use std::sync::Arc;
use std::time::Duration;

use etl_queue::AmqpConfig;
use etl_store::PgPool;
use tokio::sync::{watch, Notify};
use tokio::task::JoinSet;

use crate::lease::LeaseConfig;
use crate::pruner::RetentionConfig;
use crate::relay::{BrokerHealth, Relay, RelayConfig};
use crate::republisher::RepublisherConfig;
use crate::rescuer::RescuerConfig;
use crate::worker::{Worker, WorkerConfig};
use crate::{Handlers, QueueMetrics};

/// How long workers have, once the grace ran out, to hand their jobs back.
pub const HAND_BACK_WAIT: Duration = Duration::from_secs(4);

/// The default grace for running jobs at shutdown (`ETL_SHUTDOWN_GRACE_S`).
pub const DEFAULT_SHUTDOWN_GRACE: Duration = Duration::from_secs(25);

/// How jobs travel between processes.
#[derive(Debug, Clone)]
pub enum Transport {
    /// Through RabbitMQ: a relay publishes committed jobs; workers consume.
    Amqp(AmqpConfig),
    /// PostgreSQL alone: workers claim due rows (`FOR UPDATE SKIP LOCKED`).
    Postgres,
}

/// Settings of a [`Runtime`]; every part has a production default.
pub struct RuntimeBuilder {
    pool: PgPool,
    transport: Transport,
    handlers: Handlers,
    worker: WorkerConfig,
    relay: RelayConfig,
    rescuer: Option<RescuerConfig>,
    republisher: Option<RepublisherConfig>,
    janitor_every: Option<Duration>,
    retention: Option<RetentionConfig>,
    metrics_every: Duration,
    registry: Option<prometheus::Registry>,
    migrated: Option<watch::Receiver<bool>>,
    jobs_created: Arc<Notify>,
    broker_health: BrokerHealth,
    grace: Duration,
    lease: LeaseConfig,
    tenant_max_in_flight: Option<i32>,
}

impl RuntimeBuilder {
    /// `ETL_TENANT_MAX_IN_FLIGHT` (SPEC §12): most transform and load jobs
    /// of one tenant running at once across the deployment, for this
    /// process's relay and workers; `None` (the default): half the worker
    /// slots of the live processes, at least 1.
    pub fn tenant_max_in_flight(mut self, max: Option<i32>) -> Self {
        self.tenant_max_in_flight = max;
        self
    }

    /// The singleton tasks' lease timings (SPEC §12).
    pub fn lease(mut self, config: LeaseConfig) -> Self {
        self.lease = config;
        self
    }

    /// How long running jobs may finish after a shutdown signal before they
    /// are handed back (`ETL_SHUTDOWN_GRACE_S`).
    pub fn shutdown_grace(mut self, grace: Duration) -> Self {
        self.grace = grace;
        self
    }

    /// What the workers run (none: this process only relays).
    pub fn handlers(mut self, handlers: Handlers) -> Self {
        self.handlers = handlers;
        self
    }

    pub fn worker(mut self, config: WorkerConfig) -> Self {
        self.worker = config;
        self
    }

    pub fn relay(mut self, config: RelayConfig) -> Self {
        self.relay = config;
        self
    }

    /// The republisher's timings (amqp mode); `None` runs no republisher.
    pub fn republisher(mut self, config: Option<RepublisherConfig>) -> Self {
        self.republisher = config;
        self
    }

    /// The rescuer's timings; `None` runs no rescuer.
    pub fn rescuer(mut self, config: Option<RescuerConfig>) -> Self {
        self.rescuer = config;
        self
    }

    /// How often forgotten idempotency keys are swept; `None` runs no
    /// janitor.
    pub fn janitor(mut self, every: Option<Duration>) -> Self {
        self.janitor_every = every;
        self
    }

    /// What retention keeps and how often it prunes; `None` runs no pruner.
    pub fn retention(mut self, config: Option<RetentionConfig>) -> Self {
        self.retention = config;
        self
    }

    /// How often the queue gauges are read from the table.
    pub fn metrics_every(mut self, every: Duration) -> Self {
        self.metrics_every = every;
        self
    }

    /// Registers the queue metrics here (the HTTP `/metrics` registry).
    pub fn registry(mut self, registry: &prometheus::Registry) -> Self {
        self.registry = Some(registry.clone());
        self
    }

    /// Holds every task back until `migrated` turns true: before that they
    /// would only fail on missing tables.
    pub fn after_migrations(mut self, migrated: watch::Receiver<bool>) -> Self {
        self.migrated = Some(migrated);
        self
    }

    /// Shares the "jobs were committed" signal (with the HTTP state).
    pub fn jobs_created(mut self, notify: Arc<Notify>) -> Self {
        self.jobs_created = notify;
        self
    }

    /// Shares the relay's view of the broker (with `/ready`'s check, made
    /// before the runtime).
    pub fn broker_health(mut self, health: BrokerHealth) -> Self {
        self.broker_health = health;
        self
    }

    /// Starts every task. Must run inside a tokio runtime.
    pub fn start(self) -> Runtime {
        let registry = self.registry.unwrap_or_default();
        let metrics = QueueMetrics::register(&registry);
        let (shutdown, stopping) = watch::channel(false);
        let migrated = self.migrated.unwrap_or_else(|| watch::channel(true).1);
        // Unique even among runtimes of one process (a test's): the worker
        // name says which process, the suffix which runtime.
        let holder = format!("{}#{:08x}", self.worker.name, rand::random::<u32>());
        let mut runtime = Runtime {
            metrics: metrics.clone(),
            holder,
            lease: self.lease,
            tenant_max_in_flight: self.tenant_max_in_flight,
            slots: Arc::new(std::sync::atomic::AtomicUsize::new(0)),
            slots_changed: Arc::new(Notify::new()),
            pool: self.pool,
            transport: self.transport,
            jobs_created: self.jobs_created,
            broker_health: None,
            migrated,
            stopping,
            shutdown,
            abandon: watch::channel(false).0,
            grace: self.grace,
            tasks: JoinSet::new(),
        };
        if let Transport::Amqp(amqp) = &runtime.transport {
            let health = self.broker_health.clone();
            runtime.broker_health = Some(health.clone());
            let relay = Relay {
                pool: runtime.pool.clone(),
                amqp: amqp.clone(),
                config: RelayConfig {
                    tenant_max_in_flight: self.tenant_max_in_flight,
                    ..self.relay
                },
                wake: runtime.jobs_created.clone(),
                health,
                metrics: metrics.clone(),
            };
            let stopping = runtime.stopping.clone();
            runtime.spawn(relay.run(stopping));
            if let Some(config) = self.republisher {
                runtime.spawn_republisher(config);
            }
        }
        if !self.handlers.job_types().is_empty() {
            runtime.spawn_worker(self.handlers.clone(), self.worker);
            let task = crate::statistics::run(
                runtime.pool.clone(),
                crate::statistics::EVERY,
                runtime.stopping.clone(),
            );
            runtime.spawn(task);
        }
        if let Some(config) = self.rescuer {
            let pool = runtime.pool.clone();
            runtime.spawn_leased("rescuer", move |stop| {
                crate::rescuer::run(pool.clone(), config.clone(), stop)
            });
        }
        if let Some(every) = self.janitor_every {
            let pool = runtime.pool.clone();
            runtime.spawn_leased("janitor", move |stop| {
                crate::janitor::run(
                    pool.clone(),
                    every,
                    crate::janitor::IDEMPOTENCY_RETENTION,
                    stop,
                )
            });
        }
        if let Some(config) = self.retention {
            let (pool, metrics) = (runtime.pool.clone(), metrics.clone());
            runtime.spawn_leased("retention", move |stop| {
                crate::pruner::run(pool.clone(), config, metrics.clone(), stop)
            });
        }
        let task = crate::metrics::refresh(
            runtime.pool.clone(),
            metrics,
            self.metrics_every,
            runtime.stopping.clone(),
        );
        runtime.spawn(task);
        let task = crate::lease::announce_slots(
            runtime.pool.clone(),
            runtime.holder.clone(),
            runtime.slots.clone(),
            runtime.slots_changed.clone(),
            runtime.lease,
            runtime.stopping.clone(),
        );
        runtime.spawn(task);
        runtime
    }
}

/// The running background tasks of one process.
pub struct Runtime {
    pool: PgPool,
    /// Who this runtime is in `etl_leases` and `etl_worker_slots`.
    holder: String,
    lease: LeaseConfig,
    tenant_max_in_flight: Option<i32>,
    /// Jobs this runtime's workers run at once, announced in
    /// `etl_worker_slots` (the tenant cap's default is half the sum).
    slots: Arc<std::sync::atomic::AtomicUsize>,
    /// Poked when workers are added: the slots are announced at once.
    slots_changed: Arc<Notify>,
    /// Jobs' durations and outcomes, the queue gauges (`/metrics`).
    metrics: QueueMetrics,
    transport: Transport,
    jobs_created: Arc<Notify>,
    broker_health: Option<BrokerHealth>,
    migrated: watch::Receiver<bool>,
    stopping: watch::Receiver<bool>,
    shutdown: watch::Sender<bool>,
    /// Turns true when the shutdown grace ran out: workers hand their
    /// running jobs back.
    abandon: watch::Sender<bool>,
    /// How long running jobs may finish after a shutdown signal.
    grace: Duration,
    tasks: JoinSet<()>,
}

impl Runtime {
    /// A runtime over `pool` with production defaults: workers named
    /// `etl`, running no handlers until [`RuntimeBuilder::handlers`] says.
    pub fn builder(pool: PgPool, transport: Transport) -> RuntimeBuilder {
        RuntimeBuilder {
            pool,
            transport,
            handlers: Handlers::default(),
            worker: WorkerConfig::new("etl"),
            relay: RelayConfig::default(),
            rescuer: Some(RescuerConfig::default()),
            republisher: Some(RepublisherConfig::new(Duration::from_secs(300))),
            janitor_every: Some(Duration::from_secs(600)),
            retention: Some(RetentionConfig::default()),
            metrics_every: Duration::from_secs(5),
            registry: None,
            migrated: None,
            jobs_created: Arc::new(Notify::new()),
            broker_health: BrokerHealth::default(),
            grace: DEFAULT_SHUTDOWN_GRACE,
            lease: LeaseConfig::default(),
            tenant_max_in_flight: None,
        }
    }

    /// Poked when jobs are committed in this process (the relay listens).
    pub fn jobs_created(&self) -> Arc<Notify> {
        self.jobs_created.clone()
    }

    /// The relay's view of the broker (amqp mode), for `/ready`.
    pub fn broker_health(&self) -> Option<BrokerHealth> {
        self.broker_health.clone()
    }

    /// Starts a republisher (SPEC §8), which sends back to the relay the
    /// jobs that stay `queued` for `config.after`.
    pub fn spawn_republisher(&mut self, config: RepublisherConfig) {
        let (pool, relay) = (self.pool.clone(), self.jobs_created.clone());
        self.spawn_leased("republisher", move |stop| {
            crate::republisher::run(pool.clone(), config.clone(), relay.clone(), stop)
        });
    }

    /// Starts the singleton task `task` (SPEC §12): `start(stop)` runs
    /// while this process holds the task's lease, and stops when it loses
    /// it or the process stops.
    fn spawn_leased<F, Fut>(&mut self, task: &'static str, start: F)
    where
        F: Fn(watch::Receiver<bool>) -> Fut + Send + 'static,
        Fut: std::future::Future<Output = ()> + Send + 'static,
    {
        let leased = crate::lease::run_leased(
            self.pool.clone(),
            task,
            self.holder.clone(),
            self.lease,
            self.metrics.clone(),
            self.stopping.clone(),
            start,
        );
        self.spawn(leased);
    }

    /// Starts one more worker on this runtime's transport (a test adds
    /// workers with handlers of its own).
    pub fn spawn_worker(&mut self, handlers: Handlers, config: WorkerConfig) {
        let transport = self.transport.clone();
        self.spawn_worker_on(&transport, handlers, config);
    }

    /// Starts one more worker reaching the broker its own way (a test's
    /// workers go straight to the broker while its relay goes through a
    /// proxy it cuts).
    pub fn spawn_worker_on(
        &mut self,
        transport: &Transport,
        handlers: Handlers,
        mut config: WorkerConfig,
    ) {
        if config.tenant_max_in_flight.is_none() {
            config.tenant_max_in_flight = self.tenant_max_in_flight;
        }
        self.slots.fetch_add(
            config.concurrency.max(1),
            std::sync::atomic::Ordering::Relaxed,
        );
        self.slots_changed.notify_one();
        let worker = Worker::for_runtime(
            self.pool.clone(),
            handlers,
            config,
            self.jobs_created.clone(),
            self.abandon.subscribe(),
            self.metrics.clone(),
        );
        let stopping = self.stopping.clone();
        match transport {
            Transport::Amqp(amqp) => {
                let amqp = amqp.clone();
                self.spawn(worker.run_amqp(amqp, stopping));
            }
            Transport::Postgres => {
                let wake = self.jobs_created.clone();
                self.spawn(worker.run_postgres(wake, stopping));
            }
        }
    }

    /// `task`, started once the migrations are applied; a task whose
    /// process stops first never starts.
    fn spawn(&mut self, task: impl std::future::Future<Output = ()> + Send + 'static) {
        let (mut migrated, mut stopping) = (self.migrated.clone(), self.stopping.clone());
        self.tasks.spawn(async move {
            let ready = tokio::select! {
                ready = migrated.wait_for(|done| *done) => ready.is_ok(),
                _ = stopping.wait_for(|stop| *stop) => false,
            };
            if ready {
                task.await;
            }
        });
    }

    /// Signals every task to stop and waits for them: no job is taken any
    /// more, running jobs may finish for the grace, then the unfinished ones
    /// are handed back (`queued` again, their attempt not counted, their
    /// message returned), and the tasks are given up [`HAND_BACK_WAIT`]
    /// after that at the latest (SPEC §8: exit within the grace plus 5 s).
    pub async fn stop(mut self) {
        let _ = self.shutdown.send(true);
        let finished = tokio::time::timeout(self.grace, async {
            while self.tasks.join_next().await.is_some() {}
        })
        .await;
        if finished.is_ok() {
            return;
        }
        let _ = self.abandon.send(true);
        let handed_back = tokio::time::timeout(HAND_BACK_WAIT, async {
            while self.tasks.join_next().await.is_some() {}
        })
        .await;
        if handed_back.is_err() {
            tracing::warn!("background tasks did not stop in time; leaving them (the rescuer covers their jobs)");
            self.tasks.abort_all();
        }
    }
}
